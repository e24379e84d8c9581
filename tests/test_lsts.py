"""LSTS rules (POLICY.md) on hand-made histories, driven through the pure functions."""

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.lsts import (
    BANDIT,
    BANDIT_RUN,
    CONCURRENT,
    CONFIRMATION,
    DOWN,
    ENDED_BY_COST,
    ENDED_BY_FAILURE,
    EXPLORATION,
    START,
    THOMPSON,
    UNOBSERVED,
    UP,
    Dispatch,
    LstsKnobs,
    LstsState,
    Observation,
    apply_dispatch,
    apply_observation,
    decide_dispatch,
    initial_state,
    judge_result,
    pooled_variance,
)
from domain.randomness import restore_generator, seeded_generator_state

SIZES = [8, 16, 32, 64, 128]
B0 = 32
KNOBS = LstsKnobs()


class Job:
    """The bookkeeping an aggregate would do around the pure functions."""

    def __init__(self, knobs: LstsKnobs = KNOBS, sizes: list[int] = SIZES, b0: int = B0, seed: int = 7):
        self.knobs, self.sizes, self.b0 = knobs, sizes, b0
        self.state: LstsState = initial_state(b0)
        self.generator = seeded_generator_state(seed)

    def dispatch(self) -> Dispatch:
        dispatch = decide_dispatch(self.state, self.knobs, self.b0, self.generator)
        apply_dispatch(self.state, dispatch)
        if dispatch.generator_state is not None:
            self.generator = dispatch.generator_state
        return dispatch

    def finish(self, dispatch: Dispatch, cost: float | None, converged: bool = True) -> Observation:
        observation = judge_result(
            self.state, self.knobs, self.sizes, self.b0, dispatch.batch_size, dispatch.kind, converged, cost
        )
        apply_observation(self.state, observation)
        return observation

    def explore(self, outcomes: dict[int, tuple[float | None, bool]]) -> list[int]:
        """Run exploration trials one at a time until the bandit; return the sizes explored."""
        explored = []
        for _ in range(20):
            if self.state["phase"] == BANDIT:
                return explored
            dispatch = self.dispatch()
            assert dispatch.kind == EXPLORATION
            explored.append(dispatch.batch_size)
            self.finish(dispatch, *outcomes[dispatch.batch_size])
        raise AssertionError("exploration did not end")


def all_converge(costs: dict[int, float]) -> dict[int, tuple[float | None, bool]]:
    return {size: (cost, True) for size, cost in costs.items()}


# -- exploration --------------------------------------------------------------


def test_first_run_is_the_default_with_no_bound_then_walks_down_then_up() -> None:
    job = Job()
    first = job.dispatch()
    assert (first.batch_size, first.kind, first.cost_bound, first.why["direction"]) == (32, EXPLORATION, None, START)
    job.finish(first, 100.0)
    # Going down never gets cheaper, nor more than 1.5x the best: both directions are walked.
    rest = job.explore(all_converge({16: 110.0, 8: 120.0, 64: 105.0, 128: 140.0}))
    assert rest == [16, 8, 64, 128]


def test_exploration_bound_is_beta_explore_times_best_at_dispatch() -> None:
    job = Job()
    job.finish(job.dispatch(), 100.0)
    second = job.dispatch()
    assert second.batch_size == 16 and second.why["direction"] == DOWN
    assert second.cost_bound == pytest.approx(1.75 * 100.0)
    assert second.in_flight == {"batch_size": 16, "direction": DOWN, "best": 100.0}


def test_failure_ends_the_direction() -> None:
    job = Job()
    explored = job.explore({32: (100.0, True), 16: (175.0, False), 64: (104.0, True), 128: (108.0, True)})
    assert explored == [32, 16, 64, 128]  # 8 is never tried


def test_failure_observation_says_why_the_direction_ended() -> None:
    job = Job()
    job.finish(job.dispatch(), 100.0)
    observation = job.finish(job.dispatch(), 175.0, converged=False)
    assert observation.direction_ended == ENDED_BY_FAILURE
    assert observation.log_cost is None and observation.failures is None  # no bandit bookkeeping
    assert observation.next_step == {"batch_size": 64, "direction": UP}


def test_cost_above_one_plus_tau_times_best_ends_the_direction() -> None:
    job = Job()
    job.finish(job.dispatch(), 100.0)
    observation = job.finish(job.dispatch(), 151.0)
    assert observation.direction_ended == ENDED_BY_COST
    assert observation.next_step == {"batch_size": 64, "direction": UP}


def test_cost_of_exactly_one_plus_tau_times_best_continues() -> None:
    job = Job()
    job.finish(job.dispatch(), 100.0)
    observation = job.finish(job.dispatch(), 150.0)
    assert observation.direction_ended is None
    assert observation.next_step == {"batch_size": 8, "direction": DOWN}


def test_direction_is_judged_against_best_as_of_dispatch() -> None:
    job = Job()
    job.finish(job.dispatch(), 100.0)
    exploration = job.dispatch()  # 16, against best 100
    concurrent = job.dispatch()
    assert concurrent.kind == CONCURRENT and concurrent.batch_size == 32
    job.finish(concurrent, 80.0)  # lowers best to 80 while 16 runs
    assert job.state["best"] == 80.0
    # 130 <= 1.5 x 100 (best at dispatch) although it is > 1.5 x 80 (best now).
    observation = job.finish(exploration, 130.0)
    assert observation.direction_ended is None
    assert observation.next_step == {"batch_size": 8, "direction": DOWN}


def test_up_walk_is_skipped_only_when_going_down_improved() -> None:
    improved = Job().explore(all_converge({32: 100.0, 16: 90.0, 8: 95.0, 64: 80.0, 128: 85.0}))
    assert improved == [32, 16, 8]
    not_improved = Job().explore(all_converge({32: 100.0, 16: 101.0, 8: 102.0, 64: 80.0, 128: 85.0}))
    assert not_improved == [32, 16, 8, 64, 128]


def test_skip_up_false_walks_up_even_after_improving() -> None:
    job = Job(knobs=LstsKnobs(skip_up=False))
    explored = job.explore(all_converge({32: 100.0, 16: 90.0, 8: 95.0, 64: 80.0, 128: 85.0}))
    assert explored == [32, 16, 8, 64, 128]


def test_improvement_going_up_does_not_stop_the_up_walk() -> None:
    job = Job()
    explored = job.explore(all_converge({32: 100.0, 16: 160.0, 8: 1.0, 64: 90.0, 128: 95.0}))
    assert explored == [32, 16, 64, 128]


def test_smallest_default_goes_straight_up() -> None:
    job = Job(b0=8)
    explored = job.explore(all_converge({8: 100.0, 16: 101.0, 32: 102.0, 64: 103.0, 128: 104.0}))
    assert explored == [8, 16, 32, 64, 128]


def test_a_failed_default_run_still_walks_down_without_a_bound() -> None:
    job = Job()
    observation = job.finish(job.dispatch(), 500.0, converged=False)
    assert observation.direction_ended is None and observation.next_step == {"batch_size": 16, "direction": DOWN}
    second = job.dispatch()
    assert second.cost_bound is None


def test_exploration_ended_before_any_report_ends_the_direction() -> None:
    job = Job()
    job.finish(job.dispatch(), 100.0)
    observation = job.finish(job.dispatch(), None, converged=False)  # ended or expired, no report
    assert observation.direction_ended == ENDED_BY_FAILURE and observation.log_cost is None
    assert job.state["next_step"] == {"batch_size": 64, "direction": UP}


# -- entering the bandit ----------------------------------------------------------


def test_arms_are_explored_sizes_within_keep_tol_of_best_ascending() -> None:
    job = Job()
    # best 80 (at 64): the limit is 120; 16 (121) is out, 128 (119) is in.
    job.explore(all_converge({32: 100.0, 16: 121.0, 8: 118.0, 64: 80.0, 128: 119.0}))
    assert job.state["phase"] == BANDIT
    assert job.state["arms"] == [8, 32, 64, 128]


def test_arms_count_a_size_cheapest_converged_run() -> None:
    job = Job(sizes=[16, 32, 64], b0=32)
    exploration = job.dispatch()
    concurrent = job.dispatch()  # 32 again, nothing has finished yet
    job.finish(concurrent, 200.0)
    job.finish(exploration, 100.0)
    job.explore(all_converge({16: 140.0, 64: 149.0}))
    assert job.state["cheapest"]["32"] == 100.0
    assert job.state["arms"] == [16, 32, 64]


def test_no_converged_run_falls_back_to_the_default() -> None:
    job = Job()
    job.explore({size: (None, False) for size in SIZES})
    assert job.state["arms"] == [B0]
    dispatch = job.dispatch()
    assert (dispatch.batch_size, dispatch.kind, dispatch.why["rule"]) == (B0, BANDIT_RUN, UNOBSERVED)
    assert dispatch.cost_bound is None and dispatch.generator_state is None
    # A failure with no arm observed yet is recorded at its own cost, and never drops the last arm.
    observation = job.finish(dispatch, 300.0, converged=False)
    assert observation.log_cost == pytest.approx(math.log(300.0)) and observation.penalty is None
    job.finish(job.dispatch(), 320.0, converged=False)
    assert job.state["arms"] == [B0] and job.state["failures"] == {"32": 2}
    assert job.dispatch().batch_size == B0


# -- bandit -------------------------------------------------------------------------


def bandit_job(log_costs: dict[int, list[float]], knobs: LstsKnobs = KNOBS, seed: int = 7) -> Job:
    """A job already in the bandit with these observations (arms = their sizes)."""
    job = Job(knobs=knobs, seed=seed)
    job.state.update(
        phase=BANDIT,
        arms=sorted(log_costs),
        log_costs={str(size): list(values) for size, values in log_costs.items()},
        best=min(math.exp(min(values)) for values in log_costs.values()),
        next_step=None,
    )
    return job


def test_pooled_variance_formula() -> None:
    observations = {16: [1.0, 1.2, 1.4], 32: [2.0, 2.5], 64: [3.0]}
    means = {16: 1.2, 32: 2.25, 64: 3.0}
    squares = (0.04 + 0.0 + 0.04) + (0.0625 + 0.0625) + 0.0 + 2 * 0.05**2
    degrees = (2 + 1 + 0) + 2
    assert pooled_variance(observations, means, KNOBS) == pytest.approx(squares / degrees)
    # The s2 a Thompson decision records is that one.
    job = bandit_job(observations)
    assert job.dispatch().why["s2"] == pytest.approx(squares / degrees)


def test_confirmation_plays_the_cheapest_under_observed_competitive_arm_without_drawing() -> None:
    # 16 has its two observations; 32 and 64 are within log(1.2) of the best mean, 128 is not.
    job = bandit_job({16: [4.60, 4.62], 32: [4.70], 64: [4.65], 128: [4.9]})
    before = job.generator
    dispatch = job.dispatch()
    assert (dispatch.batch_size, dispatch.why["rule"]) == (64, CONFIRMATION)
    assert dispatch.generator_state is None and job.generator == before
    assert dispatch.cost_bound == pytest.approx(2.0 * math.exp(4.61))


def test_thompson_draws_one_normal_per_arm_in_ascending_order_and_plays_the_smallest() -> None:
    observations = {16: [4.60, 4.62], 32: [4.70, 4.66], 64: [4.9]}  # 64 is out of confirmation range
    job = bandit_job(observations)
    rng = restore_generator(job.generator)
    s2 = pooled_variance(observations, {size: np.mean(values) for size, values in observations.items()}, KNOBS)
    expected = {
        size: rng.normal(np.mean(values), math.sqrt(s2 / len(values))) for size, values in observations.items()
    }
    dispatch = job.dispatch()
    assert dispatch.why["rule"] == THOMPSON
    assert dispatch.why["draws"] == {str(size): draw for size, draw in expected.items()}
    assert dispatch.batch_size == min(expected, key=expected.__getitem__)
    assert dispatch.generator_state == job.generator != seeded_generator_state(7)


def test_confirmation_ties_keep_the_smaller_batch_size() -> None:
    job = bandit_job({16: [4.6, 4.6], 32: [4.65], 64: [4.65]})
    assert job.dispatch().batch_size == 32


def test_converged_bandit_run_appends_its_log_cost() -> None:
    job = bandit_job({16: [4.6, 4.62], 32: [4.7, 4.68]})
    dispatch = job.dispatch()
    observation = job.finish(dispatch, 90.0)
    assert observation.log_cost == pytest.approx(math.log(90.0))
    assert job.state["log_costs"][str(dispatch.batch_size)][-1] == pytest.approx(math.log(90.0))
    assert job.state["best"] == 90.0


def test_failed_bandit_run_is_penalised_and_counted() -> None:
    job = bandit_job({16: [4.6, 4.62], 32: [4.7, 4.68]})
    observation = judge_result(job.state, KNOBS, SIZES, B0, 32, BANDIT_RUN, False, 150.0)
    assert observation.penalty == pytest.approx(math.exp(4.61))
    assert observation.log_cost == pytest.approx(math.log(150.0 + math.exp(4.61)))
    assert observation.failures == 1 and observation.arms is None
    apply_observation(job.state, observation)
    assert job.state["failures"] == {"32": 1}
    assert len(job.state["log_costs"]["32"]) == 3


def test_arm_is_removed_at_fail_drop_failures_but_never_the_last() -> None:
    job = bandit_job({16: [4.6, 4.62], 32: [4.7, 4.68]})
    for _ in range(2):
        observation = judge_result(job.state, KNOBS, SIZES, B0, 32, BANDIT_RUN, False, None)
        apply_observation(job.state, observation)
    assert observation.removed_arm == 32 and job.state["arms"] == [16]
    assert job.state["log_costs"]["32"] == [4.7, 4.68]  # no cost, nothing to append
    for _ in range(3):
        apply_observation(job.state, judge_result(job.state, KNOBS, SIZES, B0, 16, BANDIT_RUN, False, 200.0))
    assert job.state["arms"] == [16] and job.state["failures"]["16"] == 3


# -- concurrent trials ----------------------------------------------------------------


def test_concurrent_trials_get_the_default_then_the_lowest_mean_and_count() -> None:
    job = Job()
    first = job.dispatch()
    concurrent = job.dispatch()
    assert (concurrent.kind, concurrent.batch_size, concurrent.cost_bound) == (CONCURRENT, B0, None)
    assert concurrent.in_flight is None and concurrent.why["waiting_for"] == B0
    job.finish(first, 100.0)
    job.finish(concurrent, 104.0)
    exploration = job.dispatch()  # 16, in flight
    assert exploration.kind == EXPLORATION
    job.finish(job.dispatch(), 102.0)  # another concurrent 32
    assert job.state["log_costs"]["32"] == pytest.approx([math.log(c) for c in (100.0, 104.0, 102.0)])
    job.finish(exploration, 90.0)
    down = job.dispatch()  # 8 in flight; 16 now has the lowest mean
    concurrent = job.dispatch()
    assert (down.batch_size, concurrent.batch_size) == (8, 16)
    assert concurrent.cost_bound == pytest.approx(1.75 * 90.0)
    failed = job.finish(concurrent, 157.5, converged=False)
    assert failed.next_step is None and failed.failures is None  # the walk waits for 8
    assert job.state["in_flight"] == {"batch_size": 8, "direction": DOWN, "best": 90.0}


def test_a_late_concurrent_run_counts_in_the_bandit() -> None:
    job = Job(sizes=[16, 32], b0=32)
    exploration = job.dispatch()
    concurrent = job.dispatch()
    job.finish(exploration, 100.0)
    job.explore(all_converge({16: 140.0}))
    assert job.state["arms"] == [16, 32]
    observation = job.finish(concurrent, 98.0)
    assert observation.phase == BANDIT and job.state["best"] == 98.0
    assert len(job.state["log_costs"]["32"]) == 2


# -- determinism and records -----------------------------------------------------------


def simulate(seed: int, decisions: int = 40) -> list[dict[str, Any]]:
    """A job on a noisy synthetic cost curve; the noise has its own fixed generator."""
    job = Job(seed=seed)
    noise = np.random.default_rng(0)
    curve = {8: 120.0, 16: 100.0, 32: 104.0, 64: 110.0, 128: 150.0}
    records = []
    for _ in range(decisions):
        dispatch = job.dispatch()
        cost = curve[dispatch.batch_size] * math.exp(noise.normal(0.0, 0.05))
        bound = dispatch.cost_bound
        converged = bound is None or cost <= bound
        observation = job.finish(dispatch, cost if converged else bound, converged)
        records.append({"dispatch": dispatch.to_record(), "observation": observation.to_record()})
    records.append({"state": job.state})
    return records


def test_same_seed_gives_the_same_decisions() -> None:
    first, second = simulate(11), simulate(11)
    assert first == second
    assert any(record.get("dispatch", {}).get("why", {}).get("rule") == THOMPSON for record in first)
    other = simulate(12)
    assert [r["dispatch"]["generator_state"] for r in first[:-1]] != [
        r["dispatch"]["generator_state"] for r in other[:-1]
    ]


def test_state_and_records_round_trip_through_strict_json() -> None:
    records = simulate(11)
    text = json.dumps(records, allow_nan=False)
    loaded = json.loads(text)
    assert loaded == records
    for record in loaded[:-1]:
        assert Dispatch.from_record(record["dispatch"]).to_record() == record["dispatch"]
        assert Observation.from_record(record["observation"]).to_record() == record["observation"]


def test_replaying_records_rebuilds_the_state() -> None:
    records = simulate(5)
    state = initial_state(B0)
    for record in records[:-1]:
        apply_dispatch(state, Dispatch.from_record(json.loads(json.dumps(record["dispatch"]))))
        apply_observation(state, Observation.from_record(json.loads(json.dumps(record["observation"]))))
    assert state == records[-1]["state"]


def test_new_state_is_strict_json() -> None:
    assert json.loads(json.dumps(initial_state(B0), allow_nan=False))["best"] is None


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_random_histories_keep_the_invariants_and_replay_from_their_records(data: st.DataObject) -> None:
    sizes = sorted(data.draw(st.sets(st.sampled_from([8, 16, 32, 64, 128, 256]), min_size=1, max_size=5)))
    job = Job(sizes=sizes, b0=data.draw(st.sampled_from(sizes)), seed=data.draw(st.integers(0, 2**32 - 1)))
    records: list[Dispatch | Observation] = []
    running: list[Dispatch] = []
    for _ in range(data.draw(st.integers(1, 60))):
        if running and data.draw(st.booleans()):
            dispatch = running.pop(data.draw(st.integers(0, len(running) - 1)))
            cost = data.draw(st.none() | st.floats(0.0, 1e4))
            converged = cost is not None and data.draw(st.booleans())
            records.append(job.finish(dispatch, cost, converged))
        else:
            dispatch = job.dispatch()
            running.append(dispatch)
            records.append(dispatch)
        state = job.state
        assert sum(run.kind == EXPLORATION for run in running) <= 1
        assert (state["in_flight"] is None) == all(run.kind != EXPLORATION for run in running)
        if state["phase"] == BANDIT:
            assert state["arms"] and state["arms"] == sorted(set(state["arms"]))
            assert set(state["arms"]) <= set(sizes)
    replayed = initial_state(job.b0)
    for record in records:
        as_json = json.loads(json.dumps(record.to_record(), allow_nan=False))
        if isinstance(record, Dispatch):
            apply_dispatch(replayed, Dispatch.from_record(as_json))
        else:
            apply_observation(replayed, Observation.from_record(as_json))
    assert replayed == json.loads(json.dumps(job.state, allow_nan=False))


# -- knobs -----------------------------------------------------------------------------


def test_knob_defaults_are_those_of_the_policy() -> None:
    assert KNOBS.to_record() == {
        "tau": 0.5,
        "beta_explore": 1.75,
        "beta_bandit": 2.0,
        "skip_up": True,
        "keep_tol": 0.5,
        "n_min": 2,
        "n_min_tol": 0.2,
        "s0": 0.05,
        "nu0": 2.0,
        "fail_drop": 2,
    }


def test_knobs_round_trip_and_missing_knobs_take_defaults() -> None:
    knobs = LstsKnobs(tau=0.7, skip_up=False, n_min=3)
    assert LstsKnobs.from_record(json.loads(json.dumps(knobs.to_record()))) == knobs
    assert LstsKnobs.from_record({"nu0": 3}) == LstsKnobs(nu0=3.0)
    assert isinstance(LstsKnobs(nu0=3).nu0, float)


@pytest.mark.parametrize(
    ("record", "named"),
    [
        ({"tau": -0.1}, "tau"),
        ({"beta_explore": 0.9}, "beta_explore"),
        ({"beta_bandit": math.inf}, "beta_bandit"),
        ({"keep_tol": "wide"}, "keep_tol"),
        ({"n_min": 1.5}, "n_min"),
        ({"n_min_tol": math.nan}, "n_min_tol"),
        ({"s0": 0.0}, "s0"),
        ({"nu0": -1.0}, "nu0"),
        ({"fail_drop": 0}, "fail_drop"),
        ({"fail_drop": True}, "fail_drop"),
        ({"skip_up": "yes"}, "skip_up"),
        ({"gamma": 1.0}, "gamma"),
    ],
)
def test_impossible_knobs_are_refused_by_name(record: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        LstsKnobs.from_record(record)


def test_bad_results_are_refused() -> None:
    job = Job()
    dispatch = job.dispatch()
    with pytest.raises(ValueError, match="kind"):
        judge_result(job.state, KNOBS, SIZES, B0, dispatch.batch_size, "pruning", True, 1.0)
    with pytest.raises(ValueError, match="cost"):
        judge_result(job.state, KNOBS, SIZES, B0, dispatch.batch_size, EXPLORATION, True, None)
    with pytest.raises(ValueError, match="cost"):
        judge_result(job.state, KNOBS, SIZES, B0, dispatch.batch_size, EXPLORATION, False, -1.0)
    with pytest.raises(ValueError, match="in flight"):
        judge_result(job.state, KNOBS, SIZES, B0, 16, EXPLORATION, True, 1.0)
