"""Drift scenarios (DRIFT.md): their factors, the choice of g, the oracle of each recurrence,
and what plain Zeus and the guarded policies do when every run grows more expensive."""

import math

import pytest

from application.drift import GROW, NONE, SLOW, STEP_SILENT, STEP_VISIBLE, Drift, choose_tilt, epochs_to_target
from application.simulator import (
    AggregateClient,
    Knobs,
    PAIRED_DRAWS,
    TraceSimulator,
    WorkloadTrace,
    drift_for,
    expected_costs,
    oracle_recurrence_cost,
    recurrence_oracle_costs,
)
from domain.spec import LSTS, JobSpec
from infrastructure.trace_data import WORKLOAD_PRESETS, Traces, shipped_power_trace, shipped_train_trace

GUARDS_IN_SPEC = "stop_window" in JobSpec.__dataclass_fields__


@pytest.fixture(scope="module")
def librispeech_v100() -> WorkloadTrace:
    traces = Traces.load(shipped_train_trace(), shipped_power_trace("v100"))
    return WorkloadTrace(traces, WORKLOAD_PRESETS["librispeech"])


def test_grow_raises_every_epochs_cost_and_leaves_epochs_alone() -> None:
    drift = Drift(GROW, 200, b_old=48)

    assert drift.cost_factor(0, 8) == 1.0
    assert drift.cost_factor(199, 48) == pytest.approx(2.7, abs=0.01)
    assert drift.cost_factor(10, 8) == drift.cost_factor(10, 192) == pytest.approx(1.005**10)
    assert drift.epochs_factor(199, 8) == 1.0


def test_step_silent_tilts_epoch_costs_from_recurrence_100() -> None:
    drift = Drift(STEP_SILENT, 200, b_old=48, g=0.5, b_new=192)

    assert drift.cost_factor(99, 192) == 1.0
    assert drift.cost_factor(100, 192) == pytest.approx(0.5)  # (192 / 48) ** -0.5
    assert drift.cost_factor(150, 12) == pytest.approx(2.0)
    assert drift.cost_factor(100, 48) == 1.0
    assert drift.epochs_factor(150, 12) == 1.0


def test_step_visible_tilts_epochs_to_target_around_b_new_from_recurrence_100() -> None:
    drift = Drift(STEP_VISIBLE, 200, b_old=48, g=0.5, b_new=192)

    assert drift.epochs_factor(99, 48) == 1.0
    assert drift.epochs_factor(100, 48) == pytest.approx(2.0)  # (48 / 192) ** -0.5
    assert drift.epochs_factor(100, 192) == 1.0
    assert drift.cost_factor(150, 48) == 1.0


def test_slow_tilts_a_little_more_every_recurrence() -> None:
    drift = Drift(SLOW, 200, b_old=48, g=0.5, b_new=192)

    assert drift.cost_factor(0, 192) == 1.0
    assert drift.cost_factor(100, 192) == pytest.approx(4 ** (-1.5 * 0.5 * 100 / 200))
    assert drift.cost_factor(199, 12) > drift.cost_factor(100, 12) > 1.0
    assert drift.cost_factor(199, 48) == 1.0
    assert drift.epochs_factor(199, 12) == 1.0


@pytest.mark.parametrize("scenario", [NONE, STEP_SILENT, STEP_VISIBLE, SLOW])
def test_a_cell_without_a_tilt_is_stationary(scenario: str) -> None:
    drift = Drift.on(scenario, {128: 5.0}, 200)

    assert (drift.b_old, drift.g, drift.b_new) == (128, None, None)
    assert [drift.cost_factor(i, 128) for i in (0, 100, 199)] == [1.0, 1.0, 1.0]
    assert [drift.epochs_factor(i, 128) for i in (0, 100, 199)] == [1.0, 1.0, 1.0]


def test_an_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="sideways"):
        Drift.on("sideways", {8: 1.0}, 10)


def test_the_smaller_tilt_wins_whichever_its_sign() -> None:
    # Upward, 64 needs 1.6 x 2^-g <= 0.75: g = 1.1. Downward, 16 needs 1.3 x 2^-|g| <= 0.75: |g| = 0.8.
    tilt = choose_tilt({16: 1.3, 32: 1.0, 64: 1.6})

    assert tilt is not None
    assert (tilt.g, tilt.b_new) == (-0.8, 16)


def test_a_tie_between_signs_goes_to_the_larger_sizes() -> None:
    tilt = choose_tilt({16: 1.3, 32: 1.0, 64: 1.3})

    assert tilt is not None
    assert (tilt.g, tilt.b_new) == (0.8, 64)


def test_the_new_optimum_must_be_a_quarter_cheaper_than_b_old() -> None:
    # g = 0.05 already makes 64 the cheapest (2^-0.05 < 1), but 25% cheaper needs 2^-g <= 0.75.
    tilt = choose_tilt({32: 1.0, 64: 1.0})

    assert tilt is not None
    assert (tilt.g, tilt.b_new) == (0.45, 64)
    assert 2**-0.4 > 0.75 >= 2**-0.45


def test_no_tilt_for_a_single_viable_size() -> None:
    assert choose_tilt({128: 1.0}) is None


def test_epochs_to_target_round_up_and_stop_at_max_epochs() -> None:
    assert epochs_to_target(10.0, 1.0, 16) == 10
    assert epochs_to_target(10.0, 1.21, 16) == 13
    assert epochs_to_target(10.0, 1.7, 16) is None
    assert epochs_to_target(math.nan, 1.0, 16) is None


def test_without_drift_every_recurrence_has_the_stationary_oracle(librispeech_v100: WorkloadTrace) -> None:
    drift = drift_for(librispeech_v100, 0.5, NONE, 50)

    assert recurrence_oracle_costs(librispeech_v100, 0.5, drift) == [oracle_recurrence_cost(librispeech_v100, 0.5)] * 50
    assert drift.b_old == 48


def test_the_oracle_of_each_recurrence_follows_the_drift(librispeech_v100: WorkloadTrace) -> None:
    stationary = oracle_recurrence_cost(librispeech_v100, 0.5)
    costs = expected_costs(librispeech_v100, 0.5)

    grow = recurrence_oracle_costs(librispeech_v100, 0.5, drift_for(librispeech_v100, 0.5, GROW, 200))
    step = drift_for(librispeech_v100, 0.5, STEP_VISIBLE, 200)
    visible = recurrence_oracle_costs(librispeech_v100, 0.5, step)

    assert grow[199] == pytest.approx(1.005**199 * stationary)
    assert visible[99] == stationary
    assert step.b_new is not None and step.b_new != step.b_old
    # After the step, b_new costs what it did, and b_old needs more epochs than it did.
    assert visible[100] <= costs[step.b_new]
    assert librispeech_v100.expected_recurrence_cost(step.b_old, 0.5, step.epochs_factor(100, step.b_old)) > costs[step.b_old]


def test_plain_zeus_bricks_recurrences_under_grow_and_goes_on(librispeech_v100: WorkloadTrace) -> None:
    simulator = TraceSimulator(librispeech_v100, AggregateClient(), Knobs(), 1, "v100", PAIRED_DRAWS, GROW)

    result = simulator.run(200)

    bricked = [recurrence for recurrence in result.recurrences if not recurrence.converged]
    assert result.summary["bricked_recurrences"] == len(bricked) > 0
    assert all(recurrence.tries == 20 for recurrence in bricked)
    assert [recurrence.number for recurrence in result.recurrences] == list(range(1, 201))
    assert result.summary["drift"] == {"scenario": GROW, "g": None, "b_old": 48, "b_new": None}


@pytest.mark.skipif(not GUARDS_IN_SPEC, reason="the job spec has no stop rule guards yet")
@pytest.mark.parametrize(
    "knobs",
    [Knobs(stop_window=20, bound_escalation=True), Knobs(policy=LSTS)],
    ids=["zeus-guarded", "lsts"],
)
def test_the_guards_brick_nothing_under_grow(librispeech_v100: WorkloadTrace, knobs: Knobs) -> None:
    simulator = TraceSimulator(librispeech_v100, AggregateClient(), knobs, 1, "v100", PAIRED_DRAWS, GROW)

    result = simulator.run(200)

    assert result.summary["bricked_recurrences"] == 0
    assert len(result.recurrences) == 200
