"""Gaussian Thompson sampling: arm fits, exploration phase, draws, windows."""

import json
import math

import numpy as np
import pytest

from domain.bandit import Arm, choose_arm, fit_arm
from domain.enums import Stage
from tests.test_pruning import T0, finish, new_job


def test_fit_single_value_has_infinite_precision() -> None:
    arm = fit_arm(32, [-5.0], prior_mean=1.0, prior_precision=3.0)
    assert (arm.mean, arm.precision, arm.num_observations) == (-5.0, math.inf, 1)


def test_a_spread_too_small_to_invert_fits_like_no_spread() -> None:
    arm = fit_arm(32, [-1e-160, -2e-160], prior_mean=0.0, prior_precision=0.0)
    assert math.isfinite(arm.mean) and arm.precision == math.inf and arm.num_observations == 2


def test_fit_uses_population_variance_and_prior() -> None:
    rewards = [-10.0, -14.0, -12.0]
    arm = fit_arm(32, rewards, prior_mean=-1.0, prior_precision=0.25)
    rho = 1 / np.var(rewards)  # population variance 8/3
    assert arm.precision == pytest.approx(0.25 + 3 * rho)
    assert arm.mean == pytest.approx((0.25 * -1.0 + rho * -36.0) / (0.25 + 3 * rho))


def test_cold_arm_is_the_prior() -> None:
    assert fit_arm(8, [], prior_mean=2.0, prior_precision=0.5) == Arm(8, 2.0, 0.5, 0)


def test_arm_record_round_trips_infinite_precision() -> None:
    arm = Arm(16, -3.0, math.inf, 1)
    record = arm.to_record()
    assert record["precision"] is None and record["precision_infinite"] is True
    assert json.loads(json.dumps(record, allow_nan=False)) == record  # strict JSON
    assert Arm.from_record(record) == arm
    finite = Arm(16, -3.0, 2.5, 2)
    assert finite.to_record()["precision_infinite"] is False and Arm.from_record(finite.to_record()) == finite


def test_arm_records_of_old_events_with_the_string_inf_are_still_read() -> None:
    old = {"batch_size": 16, "mean": -3.0, "precision": "inf", "num_observations": 1}
    assert Arm.from_record(old) == Arm(16, -3.0, math.inf, 1)


def test_exploration_phase_picks_first_underexplored_arm_of_permutation() -> None:
    arms = [Arm(8, -1.0, 1.0, 2), Arm(16, -1.0, 1.0, 1), Arm(32, -1.0, 1.0, 0)]
    choice = choose_arm(arms, 2, np.random.default_rng(3))
    expected = np.random.default_rng(3).choice(np.array([8, 16, 32]), 3, replace=False)
    assert choice.permutation == list(expected)
    first_underexplored = next(size for size in expected if size != 8)
    assert (choice.batch_size, choice.phase, choice.samples) == (first_underexplored, "explore", None)


def test_thompson_draws_one_normal_per_arm_in_ascending_order() -> None:
    arms = [Arm(32, -5.0, 4.0, 3), Arm(8, -4.0, math.inf, 3), Arm(16, -6.0, 0.25, 3)]
    generator = np.random.default_rng(11)
    choice = choose_arm(arms, 2, generator)
    reference = np.random.default_rng(11)
    reference.choice(np.array([8, 16, 32]), 3, replace=False)
    expected = {
        "8": reference.normal(-4.0, 0.0),
        "16": reference.normal(-6.0, math.sqrt(1 / 0.25)),
        "32": reference.normal(-5.0, math.sqrt(1 / 4.0)),
    }
    assert choice.samples == expected
    assert choice.batch_size == int(max(expected, key=expected.get))
    assert generator.bit_generator.state == reference.bit_generator.state


def test_ties_go_to_the_smallest_batch_size() -> None:
    arms = [Arm(8, -1.0, math.inf, 2), Arm(16, -1.0, math.inf, 2)]
    assert choose_arm(arms, 2, np.random.default_rng(0)).batch_size == 8


def mab_job(window_size: int):
    """A job in the bandit stage whose only arm (16) was explored at costs 100 and 120."""
    job = new_job(batch_sizes=[16], default_batch_size=16, num_pruning_rounds=2, window_size=window_size)
    for cost in (100.0, 120.0):
        trial = job.dispatch_trial(T0)
        finish(job, trial.number, 16, cost)
    return job


@pytest.mark.parametrize(
    ("window_size", "used"),
    [(0, [-100.0, -120.0, -90.0, -130.0]), (1, [-130.0]), (3, [-120.0, -90.0, -130.0])],
)
def test_mab_report_refits_on_window(window_size: int, used: list[float]) -> None:
    job = mab_job(window_size)
    for cost in (90.0, 130.0):
        trial = job.dispatch_trial(T0)
        assert job.stage == Stage.BANDIT
        finish(job, trial.number, 16, cost)
    assert Arm.from_record(job.policy_state["arms"]["16"]) == fit_arm(16, used, 0.0, 0.0)


def test_late_report_after_switch_refits_its_arm() -> None:
    # A Concurrent trial handed out during pruning reports late, after the switch.
    late = new_job(batch_sizes=[16, 32], default_batch_size=32, num_pruning_rounds=1)
    a = late.dispatch_trial(T0)
    concurrent = late.dispatch_trial(T0)
    assert concurrent.kind == "Concurrent"
    finish(late, a.number, 32, 100.0)
    b = late.dispatch_trial(T0)
    finish(late, b.number, 16, 80.0)
    late.dispatch_trial(T0)
    assert late.stage == Stage.BANDIT and late.policy_state["arms"]["32"]["num_observations"] == 1
    finish(late, concurrent.number, 32, 60.0)
    assert late.policy_state["arms"]["32"]["num_observations"] == 2
    assert late.min_cost == 60.0 and late.min_cost_batch_size == 32
