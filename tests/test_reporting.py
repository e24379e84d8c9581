"""The per-epoch stop rule and the report bookkeeping of the Job aggregate."""

import pytest

from domain.errors import BadOperationError
from domain.errors import TrialAbandonedError
from domain.bounds import BoundBasis
from domain.reporting import CostBound, EpochReport, StopRule, cost_bound, judge_epoch
from tests.test_pruning import T0, new_job

RULE = StopRule(eta_knob=0.5, beta_knob=2.0, max_power=300.0, target_metric=0.5, higher_is_better_metric=True, max_epochs=5)


def zeus_cost_bound(rule: StopRule, min_cost: float | None) -> CostBound:
    """Zeus's bound: beta_knob x the job's minimum cost so far."""
    return cost_bound(BoundBasis(rule.beta_knob, "beta_knob", min_cost, "min_cost"))


def test_keep_training_below_target_within_bound() -> None:
    verdict = judge_epoch(RULE, zeus_cost_bound(RULE, None), EpochReport(1, 32, 10.0, 100.0, 0.4, 1))
    assert (verdict.stop_train, verdict.converged, verdict.message) == (
        False,
        False,
        "Stop condition not met, keep training",
    )
    assert verdict.cost == 0.5 * 100.0 + 0.5 * 300.0 * 10.0


def test_convergence_is_inclusive_and_follows_metric_direction() -> None:
    assert judge_epoch(RULE, zeus_cost_bound(RULE, None), EpochReport(1, 32, 1.0, 1.0, 0.5, 1)).converged
    lower = StopRule(0.5, 2.0, 300.0, 0.5, False, 5)
    assert judge_epoch(lower, zeus_cost_bound(lower, None), EpochReport(1, 32, 1.0, 1.0, 0.5, 1)).converged
    assert not judge_epoch(lower, zeus_cost_bound(lower, None), EpochReport(1, 32, 1.0, 1.0, 0.51, 1)).stop_train


def test_max_epochs_stops_without_convergence() -> None:
    verdict = judge_epoch(RULE, zeus_cost_bound(RULE, None), EpochReport(1, 32, 1.0, 1.0, 0.1, 5))
    assert (verdict.stop_train, verdict.converged, verdict.reason) == (True, False, "max_epochs")
    assert verdict.message == "Train failed to converge within max_epoch(5)"


def test_cost_bound_is_beta_times_min_cost_inclusive() -> None:
    cost = 0.5 * 100.0 + 0.5 * 300.0 * 10.0
    at_bound = judge_epoch(RULE, zeus_cost_bound(RULE, cost / 2.0), EpochReport(1, 32, 10.0, 100.0, 0.4, 1))
    assert not at_bound.stop_train
    over = judge_epoch(RULE, zeus_cost_bound(RULE, cost / 2.0 - 1e-6), EpochReport(1, 32, 10.0, 100.0, 0.9, 1))
    assert (over.stop_train, over.converged, over.reason) == (True, False, "cost_bound")
    assert "Batch Size(32) exceeded the cost upper bound" in over.message


def test_beta_none_disables_early_stop() -> None:
    rule = StopRule(0.5, None, 300.0, 0.5, True, 5)
    assert not judge_epoch(rule, zeus_cost_bound(rule, 1.0), EpochReport(1, 32, 10.0, 100.0, 0.4, 1)).stop_train


def test_already_reported_answers_the_stored_flag_and_changes_nothing() -> None:
    job = new_job()
    trial = job.dispatch_trial(T0)
    job.report(EpochReport(trial.number, trial.batch_size, 100.0, 100.0, 0.1, job.spec.max_epochs), T0)
    version = job.version
    again = job.report(EpochReport(trial.number, trial.batch_size, 1.0, 1.0, 0.9, 1), T0)
    assert (again.stop_train, again.converged) == (True, False)
    assert again.message == "Result for this trial(1) is already reported."
    assert job.version == version


def test_only_a_strictly_lower_cost_moves_min_cost() -> None:
    job = new_job(batch_sizes=[16, 32, 64], default_batch_size=32)
    first = job.dispatch_trial(T0)
    job.report(EpochReport(first.number, 32, 0.0, 200.0, 0.9, 1), T0)
    second = job.dispatch_trial(T0)
    job.report(EpochReport(second.number, 16, 0.0, 200.0, 0.9, 1), T0)
    assert (job.min_cost, job.min_cost_batch_size) == (100.0, 32)


def test_progress_reports_do_not_finish_the_trial() -> None:
    job = new_job()
    trial = job.dispatch_trial(T0)
    assert not job.report(EpochReport(trial.number, trial.batch_size, 1.0, 1.0, 0.1, 1), T0).stop_train
    assert job.trial_status(trial.number) == "Dispatched"


def test_report_for_unknown_trial_or_wrong_batch_size_is_rejected() -> None:
    job = new_job()
    trial = job.dispatch_trial(T0)
    with pytest.raises(BadOperationError):
        job.report(EpochReport(trial.number + 1, trial.batch_size, 1.0, 1.0, 0.9, 1), T0)
    with pytest.raises(BadOperationError):
        job.report(EpochReport(trial.number, trial.batch_size * 2, 1.0, 1.0, 0.9, 1), T0)


def test_report_after_end_is_a_conflict() -> None:
    job = new_job()
    trial = job.dispatch_trial(T0)
    job.end_trial(trial.number, trial.batch_size, T0)
    with pytest.raises(TrialAbandonedError):
        job.report(EpochReport(trial.number, trial.batch_size, 1.0, 1.0, 0.9, 1), T0)
