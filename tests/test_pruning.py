"""The pruning stage, driven through the Job aggregate as the service drives it."""

from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from domain.errors import NoConvergedBatchSizeError
from domain.enums import Stage, TrialKind
from domain.job import Job
from domain.reporting import EpochReport
from domain.spec import JobSpec
from tests.helpers import job_spec

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def new_job(**overrides) -> Job:
    spec = JobSpec.create(job_spec(job_id="test-1", **overrides))
    return Job.register(uuid4(), spec, spec.mab_seed or 7, T0)


def finish(job: Job, number: int, batch_size: int, cost: float, converged: bool = True) -> None:
    """Report a final epoch whose cost is exactly ``cost`` (eta 0.5: energy = 2*cost)."""
    metric = 0.9 if converged else 0.1
    epoch = 1 if converged else job.spec.max_epochs
    answer = job.report(EpochReport(number, batch_size, 0.0, 2 * cost, metric, epoch), T0)
    assert answer.stop_train


def explore(job: Job, outcomes: dict[int, tuple[float, bool]]) -> list[int]:
    """Dispatch and finish trials one at a time until the job leaves pruning; return the sizes."""
    sizes = []
    for _ in range(50):
        if job.stage != Stage.PRUNING:
            break
        trial = job.dispatch_trial(T0)
        if job.stage == Stage.BANDIT:
            job.end_trial(trial.number, trial.batch_size, T0)
            break
        sizes.append(trial.batch_size)
        cost, converged = outcomes[trial.batch_size]
        finish(job, trial.number, trial.batch_size, cost, converged)
    return sizes


def test_walks_down_from_default_then_up() -> None:
    job = new_job(batch_sizes=[8, 16, 32, 64, 128], default_batch_size=32, num_pruning_rounds=1)
    sizes = explore(job, {size: (1000.0 + size, True) for size in [8, 16, 32, 64, 128]})
    assert sizes == [32, 16, 8, 64, 128]


def test_non_convergence_breaks_the_direction() -> None:
    job = new_job(batch_sizes=[8, 16, 32, 64, 128], default_batch_size=32, num_pruning_rounds=1)
    outcomes = {8: (1.0, True), 16: (900.0, False), 32: (1000.0, True), 64: (800.0, True), 128: (700.0, False)}
    sizes = explore(job, outcomes)
    # 16 fails: 8 is skipped, go up; 128 fails: round over. Survivors 32 and 64.
    assert sizes == [32, 16, 64, 128]
    assert sorted(job.policy_state["arms"]) == ["32", "64"]


def test_second_round_starts_from_cheapest_survivor() -> None:
    job = new_job(batch_sizes=[8, 16, 32, 64], default_batch_size=32, num_pruning_rounds=2)
    outcomes = {8: (500.0, False), 16: (300.0, True), 32: (400.0, True), 64: (350.0, True)}
    sizes = explore(job, outcomes)
    # Round 1 keeps 16, 32, 64 (8 failed); round 2 starts at the cheapest, 16, then goes up.
    assert sizes == [32, 16, 8, 64, 16, 32, 64]


def test_ties_keep_the_first_visited_size() -> None:
    job = new_job(batch_sizes=[16, 32, 64], default_batch_size=32, num_pruning_rounds=2)
    sizes = explore(job, {16: (100.0, True), 32: (100.0, True), 64: (100.0, True)})
    assert sizes[3] == 32  # round 2 restarts at 32, the first of the equally cheap sizes


def test_concurrent_trial_at_min_cost_size_while_exploration_in_flight() -> None:
    job = new_job(batch_sizes=[16, 32, 64], default_batch_size=32)
    first = job.dispatch_trial(T0)
    finish(job, first.number, 32, 100.0)
    second = job.dispatch_trial(T0)
    assert (second.batch_size, second.kind) == (16, TrialKind.EXPLORATION)
    third = job.dispatch_trial(T0)
    assert (third.batch_size, third.kind, third.number) == (32, TrialKind.CONCURRENT, 3)
    finish(job, second.number, 16, 50.0)
    fourth = job.dispatch_trial(T0)
    assert (fourth.batch_size, fourth.kind) == (64, TrialKind.EXPLORATION)
    fifth = job.dispatch_trial(T0)
    assert (fifth.batch_size, fifth.kind) == (16, TrialKind.CONCURRENT)  # min cost moved to 16


def test_concurrent_trial_before_any_cost_uses_default() -> None:
    job = new_job(batch_sizes=[16, 32, 64], default_batch_size=32)
    job.dispatch_trial(T0)
    assert job.dispatch_trial(T0).batch_size == 32


def test_ended_exploration_is_explored_again() -> None:
    job = new_job(batch_sizes=[16, 32, 64], default_batch_size=32)
    first = job.dispatch_trial(T0)
    job.end_trial(first.number, first.batch_size, T0)
    again = job.dispatch_trial(T0)
    assert (again.number, again.batch_size, again.kind) == (2, 32, TrialKind.EXPLORATION)


def test_expired_exploration_is_explored_again() -> None:
    job = new_job(batch_sizes=[16, 32, 64], default_batch_size=32)
    first = job.dispatch_trial(T0)
    assert job.expire_stale_trials(T0 + timedelta(seconds=59), 60) == []
    assert job.expire_stale_trials(T0 + timedelta(seconds=61), 60) == [first.number]
    assert job.trial_status(first.number) == "Failed"
    assert job.dispatch_trial(T0).kind == TrialKind.EXPLORATION


def test_round_without_converged_size_is_a_clear_error() -> None:
    job = new_job(batch_sizes=[16, 32], default_batch_size=32, num_pruning_rounds=1)
    trial = job.dispatch_trial(T0)
    finish(job, trial.number, 32, 10.0, converged=False)  # 32 fails: 16 is never tried
    with pytest.raises(NoConvergedBatchSizeError, match="round 1"):
        job.dispatch_trial(T0)
    assert job.trial_count == 1  # nothing was dispatched by the failed predict


def test_switch_to_mab_fits_arms_on_exploration_rewards() -> None:
    job = new_job(batch_sizes=[16, 32], default_batch_size=32, num_pruning_rounds=2, mab_prior_precision=0.5)
    costs = iter([100.0, 80.0, 110.0, 70.0])
    for _ in range(4):
        trial = job.dispatch_trial(T0)
        finish(job, trial.number, trial.batch_size, next(costs))
    trial = job.dispatch_trial(T0)
    assert job.stage == Stage.BANDIT and trial.kind == TrialKind.BANDIT
    # Trials: 32 at 100, 16 at 80, then round 2 from 16: 16 at 110, 32 at 70.
    arm32 = job.policy_state["arms"]["32"]
    rho = 1 / 225  # population variance of (-100, -70)
    assert arm32["precision"] == pytest.approx(0.5 + 2 * rho)
    assert arm32["mean"] == pytest.approx((rho * -170.0) / (0.5 + 2 * rho))
    assert arm32["num_observations"] == 2


def test_zero_pruning_rounds_starts_with_cold_arms() -> None:
    job = new_job(batch_sizes=[16, 32, 64], default_batch_size=32, num_pruning_rounds=0, mab_num_explorations=1)
    trial = job.dispatch_trial(T0)
    assert job.stage == Stage.BANDIT and trial.kind == TrialKind.BANDIT
    assert all(arm["num_observations"] == 0 for arm in job.policy_state["arms"].values())
