"""LSTS: local search over sorted batch sizes, then Thompson sampling with a pooled variance.

The rules are those of POLICY.md. The module is built for event sourcing:

- ``LstsState`` is a plain dict of JSON primitives (no inf or nan: ``best`` is None until a
  run converges), so it can live in an aggregate and in snapshots as is.
- Every decision is a pure function of the state that returns a small record
  (``Dispatch``, ``Observation``) carrying everything the decision changes. The
  ``apply_*`` functions only assign or append what a record says, so an event's
  ``apply`` never decides anything and a replay never draws a random number.
- The random generator is never global: bandit decisions restore it from the state the
  caller recorded and return its new state (``domain.randomness``).

Vocabulary: a *run* is one trial of a batch size; its *kind* is ``exploration`` (the one
step of the walk in flight), ``concurrent`` (asked for while that step is in flight) or
``bandit``. Batch sizes are dict keys as strings, as JSON requires.
"""

import math
import sys
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Mapping, Self, Sequence, TypedDict

from domain.bounds import BoundBasis
from domain.errors import InvalidSpecError
from domain.randomness import GeneratorState, generator_state, restore_generator

# Phases of a job.
EXPLORE = "explore"
BANDIT = "bandit"

# Kinds of run.
EXPLORATION = "exploration"
CONCURRENT = "concurrent"
BANDIT_RUN = "bandit"
KINDS = (EXPLORATION, CONCURRENT, BANDIT_RUN)

# Directions of the walk; the first run (the default batch size) belongs to none.
START = "start"
DOWN = "down"
UP = "up"

# Why a direction ended early (it also ends when it runs out of batch sizes).
ENDED_BY_FAILURE = "failed"
ENDED_BY_COST = "too_costly"

# Why a bandit decision chose its batch size.
CONFIRMATION = "confirmation"
THOMPSON = "thompson"
UNOBSERVED = "unobserved"  # the fallback arm has no observation yet: nothing to sample from


@dataclass(frozen=True)
class LstsKnobs:
    """The per-job parameters of POLICY.md, with its defaults."""

    tau: float = 0.5
    beta_explore: float = 1.75
    beta_bandit: float = 2.0
    skip_up: bool = True
    keep_tol: float = 0.5
    n_min: int = 2
    n_min_tol: float = 0.2
    s0: float = 0.05
    nu0: float = 2.0
    fail_drop: int = 2

    def __post_init__(self) -> None:
        for name, bounds in KNOB_BOUNDS.items():
            value = getattr(self, name)
            if name in ("n_min", "fail_drop"):
                _require_integer(name, value, lowest=int(bounds["ge"]))
            else:
                lowest = bounds.get("ge", bounds.get("gt", 0.0))
                _require_number(name, value, lowest=lowest, inclusive="ge" in bounds)
        if not isinstance(self.skip_up, bool):
            raise InvalidSpecError("skip_up", f"must be true or false, got {self.skip_up!r}")
        for name in ("tau", "beta_explore", "beta_bandit", "keep_tol", "n_min_tol", "s0", "nu0"):
            # Records then hold 2.0, not 2, whatever the caller wrote.
            object.__setattr__(self, name, float(getattr(self, name)))

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "LstsKnobs":
        """Knobs from a record; a missing knob takes its default, an unknown one is an error."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise InvalidSpecError(unknown[0], f"is not an LSTS knob (unknown: {', '.join(unknown)})")
        return cls(**record)


# Far above any useful value, and low enough that no bound, variance or draw can overflow.
MAX_KNOB = 1e6
# Each numeric knob's bounds (pydantic-style gt / ge / le), stated once: the knobs check
# them, and the HTTP schema documents them (domain.spec.FIELD_BOUNDS).
KNOB_BOUNDS: dict[str, dict[str, float]] = {
    "tau": {"ge": 0.0, "le": MAX_KNOB},
    "keep_tol": {"ge": 0.0, "le": MAX_KNOB},
    "n_min_tol": {"ge": 0.0, "le": MAX_KNOB},
    # A bound below the best run would stop every run, the best one included.
    "beta_explore": {"ge": 1.0, "le": MAX_KNOB},
    "beta_bandit": {"ge": 1.0, "le": MAX_KNOB},
    # Both strictly positive, so that the pooled variance is never 0/0 or 0.
    "s0": {"gt": 0.0, "le": MAX_KNOB},
    "nu0": {"gt": 0.0, "le": MAX_KNOB},
    "n_min": {"ge": 0, "le": MAX_KNOB},
    "fail_drop": {"ge": 1, "le": MAX_KNOB},
}


def _require_number(name: str, value: Any, lowest: float, inclusive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidSpecError(name, f"must be a finite number, got {value!r}")
    if value < lowest or (value == lowest and not inclusive) or value > MAX_KNOB:
        relation = ">=" if inclusive else ">"
        raise InvalidSpecError(name, f"must be {relation} {lowest} and <= {MAX_KNOB:g}, got {value!r}")


def _require_integer(name: str, value: Any, lowest: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= MAX_KNOB:
        raise InvalidSpecError(name, f"must be an integer from {lowest} to {MAX_KNOB:g}, got {value!r}")


class Step(TypedDict):
    """One step of the walk: which batch size to explore, in which direction."""

    batch_size: int
    direction: str


class StepInFlight(Step):
    """The exploration run in flight, with ``best`` as of its dispatch (its yardstick)."""

    best: float | None


class LstsState(TypedDict):
    phase: str  # EXPLORE or BANDIT
    best: float | None  # cost of the cheapest converged run so far
    log_costs: dict[str, list[float]]  # batch size -> observations (log costs, penalties included)
    cheapest: dict[str, float]  # batch size -> its cheapest converged cost
    failures: dict[str, int]  # batch size -> failed bandit runs
    explored: list[int]  # batch sizes whose exploration run finished, in order
    going_down_improved: bool
    next_step: Step | None  # the walk's next step, while exploring and none is in flight
    in_flight: StepInFlight | None  # the exploration run in flight
    arms: list[int]  # ascending; set on entering the bandit


def initial_state(default_batch_size: int) -> LstsState:
    """A new job: the first run explores the default batch size, with no bound."""
    return {
        "phase": EXPLORE,
        "best": None,
        "log_costs": {},
        "cheapest": {},
        "failures": {},
        "explored": [],
        "going_down_improved": False,
        "next_step": {"batch_size": default_batch_size, "direction": START},
        "in_flight": None,
        "arms": [],
    }


class _Record:
    """A frozen dataclass of JSON primitives, stored in an event as a dict."""

    def to_record(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        return cls(**record)


# -- dispatch ------------------------------------------------------------------


@dataclass(frozen=True)
class Dispatch(_Record):
    """Which batch size a new run gets, its cost bound, and why."""

    batch_size: int
    kind: str
    cost_bound: float | None  # None: no bound
    generator_state: GeneratorState | None  # the generator after the draws; None: no draw
    in_flight: StepInFlight | None  # the exploration step this run starts (exploration only)
    why: dict[str, Any]


# The costs of the last few converged runs of a batch size (or of any size, for None), oldest
# first: given, the cost bound's reference is taken from them instead of the whole history.
RecentCosts = Callable[[int | None], Sequence[float]]


def bound_terms(state: LstsState, knobs: LstsKnobs, recent: RecentCosts | None = None) -> BoundBasis:
    """The bound of a run dispatched now: while exploring ``beta_explore x best``, in the bandit
    ``beta_bandit x exp(min over arms of mean log cost)``; with ``recent``, best is the cheapest
    recent converged run and each arm's mean is over its recent converged runs only."""
    if state["phase"] != BANDIT:
        reference = state["best"] if recent is None else min(recent(None), default=None)
        return BoundBasis(knobs.beta_explore, "beta_explore", reference, "best")
    if recent is None:
        min_mean = min(_means(state, state["arms"]).values(), default=None)
        reference = None if min_mean is None else math.exp(min_mean)
        return BoundBasis(knobs.beta_bandit, "beta_bandit", reference, "exp(min mean log cost)")
    recent_means = [_mean([_log(cost) for cost in costs]) for costs in map(recent, state["arms"]) if costs]
    reference = math.exp(min(recent_means)) if recent_means else None
    return BoundBasis(knobs.beta_bandit, "beta_bandit", reference, "exp(min recent mean log cost)")


def decide_dispatch(
    state: LstsState,
    knobs: LstsKnobs,
    default_batch_size: int,
    generator: GeneratorState,
    recent: RecentCosts | None = None,
) -> Dispatch:
    """The next run's batch size. ``generator`` is the job's recorded generator state."""
    bound = bound_terms(state, knobs, recent).value()
    if state["phase"] == BANDIT:
        return _bandit_dispatch(state, knobs, generator, bound)
    best = state["best"]
    step = state["next_step"]
    if state["in_flight"] is None and step is not None:
        in_flight: StepInFlight = {**step, "best": best}
        why = {"phase": EXPLORE, "rule": "walk", "direction": step["direction"], "best": best}
        return Dispatch(step["batch_size"], EXPLORATION, bound, None, in_flight, why)
    means = _means(state, sorted(int(size) for size in state["log_costs"]))
    size = min(means, key=means.__getitem__, default=default_batch_size)
    why = {
        "phase": EXPLORE,
        "rule": "lowest_mean",
        "waiting_for": None if state["in_flight"] is None else state["in_flight"]["batch_size"],
        "best": best,
        "means": {str(size): mean for size, mean in means.items()},
    }
    return Dispatch(size, CONCURRENT, bound, None, None, why)


def _bandit_dispatch(state: LstsState, knobs: LstsKnobs, generator: GeneratorState, bound: float | None) -> Dispatch:
    arms = state["arms"]
    observations = {arm: state["log_costs"].get(str(arm), []) for arm in arms}
    means = {arm: _mean(values) for arm, values in observations.items() if values}
    counts = {arm: len(values) for arm, values in observations.items()}
    why: dict[str, Any] = {
        "phase": BANDIT,
        "best": state["best"],
        "arms": list(arms),
        "means": {str(arm): mean for arm, mean in means.items()},
        "counts": {str(arm): count for arm, count in counts.items()},
        "s2": None,
        "draws": None,
    }
    min_mean = min(means.values(), default=None)
    unobserved = [arm for arm in arms if counts[arm] == 0]
    if unobserved:
        return Dispatch(unobserved[0], BANDIT_RUN, bound, None, None, {**why, "rule": UNOBSERVED})
    assert min_mean is not None
    s2 = pooled_variance(observations, means, knobs)
    why["s2"] = s2
    within = min_mean + math.log(1 + knobs.n_min_tol)
    to_confirm = [arm for arm in arms if counts[arm] < knobs.n_min and means[arm] <= within]
    if to_confirm:
        chosen = min(to_confirm, key=means.__getitem__)
        return Dispatch(chosen, BANDIT_RUN, bound, None, None, {**why, "rule": CONFIRMATION})
    rng = restore_generator(generator)
    # numpy's normal takes the standard deviation: theta_a ~ Normal(m_a, variance s2 / n_a).
    draws = {arm: float(rng.normal(means[arm], math.sqrt(s2 / counts[arm]))) for arm in arms}
    chosen = min(arms, key=draws.__getitem__)  # arms ascend, so ties keep the smaller size
    why.update(rule=THOMPSON, draws={str(arm): draw for arm, draw in draws.items()})
    return Dispatch(chosen, BANDIT_RUN, bound, generator_state(rng), None, why)


def pooled_variance(
    observations: Mapping[int, Sequence[float]], means: Mapping[int, float], knobs: LstsKnobs
) -> float:
    """(sum of squared deviations from each arm's mean + nu0 s0^2) / (sum of (n_a - 1) + nu0).

    Arms without observations take no part (they have no mean to deviate from).
    """
    squares = knobs.nu0 * knobs.s0**2
    degrees = knobs.nu0
    for arm, values in observations.items():
        if values:
            squares += math.fsum((x - means[arm]) ** 2 for x in values)
            degrees += len(values) - 1
    return squares / degrees


def arm_beliefs(state: LstsState, knobs: LstsKnobs) -> list[dict[str, Any]]:
    """What the bandit believes of each arm, in the shape of Zeus's arm records (mean reward =
    -cost, precision of that mean) so one view shows both policies: the mean log cost m and
    its variance s2 / n carried to the cost scale (exp(m), and by the delta method a
    standard deviation of exp(m) x sqrt(s2 / n)); ``mean_log_cost`` keeps the belief itself."""
    arms = state["arms"]
    observations = {arm: state["log_costs"].get(str(arm), []) for arm in arms}
    means = {arm: _mean(values) for arm, values in observations.items() if values}
    s2 = pooled_variance(observations, means, knobs) if means else None
    beliefs = []
    for arm in arms:
        count = len(observations[arm])
        if count == 0 or s2 is None:
            beliefs.append({"batch_size": arm, "mean": 0.0, "precision": 0.0, "precision_infinite": False, "num_observations": 0, "mean_log_cost": None})
            continue
        cost = math.exp(means[arm])
        beliefs.append(
            {
                "batch_size": arm,
                "mean": -cost,
                "precision": count / (cost * cost * s2),
                "precision_infinite": False,
                "num_observations": count,
                "mean_log_cost": means[arm],
            }
        )
    return beliefs


def exploited(state: LstsState, default_batch_size: int) -> tuple[int, float | None, int]:
    """The batch size LSTS would exploit now, its mean log cost and its observations: in the
    bandit the observed arm of lowest mean, before it the size of lowest mean so far (what a
    concurrent run gets), before any observation the default."""
    sizes = state["arms"] if state["phase"] == BANDIT else sorted(int(size) for size in state["log_costs"])
    means = _means(state, sizes)
    if not means:
        return default_batch_size, None, 0
    size = min(means, key=means.__getitem__)
    return size, means[size], len(state["log_costs"][str(size)])


def apply_dispatch(state: LstsState, dispatch: Dispatch) -> None:
    """Assign what a dispatch changes: only an exploration run changes the state."""
    start_step(state, dispatch.in_flight)


def start_step(state: LstsState, in_flight: StepInFlight | None) -> None:
    """Assign the exploration step a dispatch started, if any."""
    if in_flight is not None:
        state["in_flight"] = StepInFlight(**in_flight)
        state["next_step"] = None


# -- results -------------------------------------------------------------------


@dataclass(frozen=True)
class Observation(_Record):
    """What one finished run changes. Fields left None change nothing."""

    batch_size: int
    kind: str
    phase: str  # the phase the run was judged in
    converged: bool
    cost: float | None  # None: ended before any report
    log_cost: float | None = None  # appended to the batch size's observations
    penalty: float | None = None  # exp(min mean over arms) added to a failed bandit run's cost
    failures: int | None = None  # the batch size's new failure count
    best: float | None = None  # the new best, when this run lowered it
    cheapest: float | None = None  # the batch size's new cheapest converged cost
    # Exploration run only: the walk after it.
    direction: str | None = None
    direction_ended: str | None = None  # ENDED_BY_FAILURE, ENDED_BY_COST or None
    going_down_improved: bool | None = None  # its new value
    next_step: Step | None = None
    enter_bandit: bool = False
    arms: list[int] | None = None  # the new arms: on entering the bandit, or after a removal
    removed_arm: int | None = None


def judge_result(
    state: LstsState,
    knobs: LstsKnobs,
    batch_sizes: Sequence[int],
    default_batch_size: int,
    batch_size: int,
    kind: str,
    converged: bool,
    cost: float | None,
) -> Observation:
    """What a finished run changes. A run ended or expired is failed; its cost is the last
    one reported, or None when it ended before any report.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if cost is not None and not (math.isfinite(cost) and cost >= 0):
        raise ValueError(f"cost must be a finite number >= 0, got {cost!r}")
    if converged and cost is None:
        raise ValueError("a converged run has a cost")
    converged_cost = cost if converged else None
    outcome = Observation(
        batch_size=batch_size,
        kind=kind,
        phase=state["phase"],
        converged=converged,
        cost=cost,
        log_cost=None if converged_cost is None else _log(converged_cost),
        best=_lower(state["best"], converged_cost),
        cheapest=_lower(state["cheapest"].get(str(batch_size)), converged_cost),
    )
    if state["phase"] == BANDIT and not converged:
        return _bandit_failure(state, knobs, outcome)
    if kind == EXPLORATION:
        return _walk_on(state, knobs, batch_sizes, default_batch_size, outcome)
    return outcome


def _bandit_failure(state: LstsState, knobs: LstsKnobs, outcome: Observation) -> Observation:
    """Penalise a failed bandit run and count it; drop its arm at ``fail_drop`` failures."""
    arms = state["arms"]
    min_mean = min(_means(state, arms).values(), default=None)
    # With no observed arm there is nothing to penalise against: the cost is kept as is.
    penalty = None if min_mean is None else math.exp(min_mean)
    log_cost = None
    if outcome.cost is not None:
        log_cost = _log(outcome.cost + (penalty or 0.0))
    failures = state["failures"].get(str(outcome.batch_size), 0) + 1
    drop = outcome.batch_size in arms and failures >= knobs.fail_drop and len(arms) > 1
    return replace(
        outcome,
        log_cost=log_cost,
        penalty=penalty,
        failures=failures,
        arms=[arm for arm in arms if arm != outcome.batch_size] if drop else None,
        removed_arm=outcome.batch_size if drop else None,
    )


def _walk_on(
    state: LstsState,
    knobs: LstsKnobs,
    batch_sizes: Sequence[int],
    default_batch_size: int,
    outcome: Observation,
) -> Observation:
    """Judge the exploration run against ``best`` as of its dispatch and take the next step."""
    step = state["in_flight"]
    if step is None or step["batch_size"] != outcome.batch_size:
        raise ValueError(f"no exploration of batch size {outcome.batch_size} is in flight")
    yardstick = step["best"]
    cost = outcome.cost if outcome.converged else None
    ended = None
    if step["direction"] == START:
        pass  # the default's own run starts the walk down whatever its outcome
    elif cost is None:
        ended = ENDED_BY_FAILURE
    elif yardstick is not None and cost > (1 + knobs.tau) * yardstick:
        ended = ENDED_BY_COST
    improved = cost is not None and ended is None and (yardstick is None or cost < yardstick)
    going_down_improved = state["going_down_improved"] or (step["direction"] == DOWN and improved)
    next_step = _next_step(
        sorted(batch_sizes),
        default_batch_size,
        step,
        ended is None,
        going_down_improved and knobs.skip_up,
    )
    arms = None
    if next_step is None:
        arms = _select_arms(state, knobs, outcome, default_batch_size)
    return replace(
        outcome,
        direction=step["direction"],
        direction_ended=ended,
        going_down_improved=going_down_improved,
        next_step=next_step,
        enter_bandit=next_step is None,
        arms=arms,
    )


def _next_step(
    sizes: list[int], default_batch_size: int, step: Step, go_on: bool, skip_up_walk: bool
) -> Step | None:
    """Down from the default one size at a time, then (unless skipped) up from it."""
    current, direction = step["batch_size"], step["direction"]
    if direction in (START, DOWN):
        smaller = [size for size in sizes if size < current]
        if go_on and smaller:
            return {"batch_size": smaller[-1], "direction": DOWN}
        if skip_up_walk:
            return None
        current = default_batch_size  # the up walk starts next to the default
    elif not go_on:
        return None
    larger = [size for size in sizes if size > current]
    return {"batch_size": larger[0], "direction": UP} if larger else None


def _select_arms(
    state: LstsState, knobs: LstsKnobs, outcome: Observation, default_batch_size: int
) -> list[int]:
    """Explored sizes whose cheapest converged run is within (1 + keep_tol) x best, ascending."""
    best = outcome.best if outcome.best is not None else state["best"]
    if best is None:
        return [default_batch_size]
    cheapest = dict(state["cheapest"])
    if outcome.cheapest is not None:
        cheapest[str(outcome.batch_size)] = outcome.cheapest
    explored = {*state["explored"], outcome.batch_size}
    limit = (1 + knobs.keep_tol) * best
    arms = sorted(size for size in explored if cheapest.get(str(size), math.inf) <= limit)
    return arms or [default_batch_size]


def apply_observation(state: LstsState, observation: Observation) -> None:
    """Assign and append what the observation says; decides nothing."""
    key = str(observation.batch_size)
    if observation.log_cost is not None:
        state["log_costs"].setdefault(key, []).append(observation.log_cost)
    if observation.failures is not None:
        state["failures"][key] = observation.failures
    if observation.best is not None:
        state["best"] = observation.best
    if observation.cheapest is not None:
        state["cheapest"][key] = observation.cheapest
    if observation.kind == EXPLORATION:
        state["explored"].append(observation.batch_size)
        state["in_flight"] = None
        state["next_step"] = observation.next_step
        state["going_down_improved"] = bool(observation.going_down_improved)
    if observation.enter_bandit:
        state["phase"] = BANDIT
    if observation.arms is not None:
        state["arms"] = list(observation.arms)


# -- helpers -------------------------------------------------------------------


def _lower(current: float | None, cost: float | None) -> float | None:
    """``cost`` when it lowers ``current`` (None: nothing yet), else None (no change)."""
    if cost is None or (current is not None and cost >= current):
        return None
    return cost


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _means(state: LstsState, sizes: Sequence[int]) -> dict[int, float]:
    """Mean log cost of each given size that has observations, in the given order."""
    return {
        size: _mean(state["log_costs"][str(size)])
        for size in sizes
        if state["log_costs"].get(str(size))
    }


def _log(cost: float) -> float:
    # A run that measured nothing (cost 0) still needs a finite observation.
    return math.log(max(cost, sys.float_info.min))
