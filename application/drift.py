"""Drift scenarios (DRIFT.md): how a recurring job's runs change over its life.

A scenario perturbs the recorded runs with two factors for a run of batch size b at
recurrence i (numbered 0 .. N-1): ``cost_factor`` multiplies the energy and time of
every epoch, so the trainer sees it in every report; ``epochs_factor`` multiplies the
epochs the run needs to reach the target, so it shows only when a run ends. The
logic here is pure: the simulator gives it the expected cost of each batch size and
applies the factors to the runs it draws.
"""

import math
from dataclasses import dataclass
from typing import Mapping

NONE = "none"
GROW = "grow"  # D1: every run costs more, the optimum stays
STEP_SILENT = "step-silent"  # D2: at the step, every epoch's cost tilts towards b_new
STEP_VISIBLE = "step-visible"  # D3: at the step, the epochs to target tilt towards b_new
SLOW = "slow"  # D4: every epoch's cost tilts towards b_new, a little more every recurrence
SCENARIOS = (NONE, GROW, STEP_SILENT, STEP_VISIBLE, SLOW)
TILTED = (STEP_SILENT, STEP_VISIBLE, SLOW)

GROWTH_PER_RECURRENCE = 1.005
STEP_RECURRENCE = 100
SLOW_SPAN = 1.5  # D4 reaches a tilt of 1.5 g at the last recurrence
TILT_STEPS_PER_UNIT = 20  # |g| is searched in steps of 0.05 ...
TILT_STEPS = 200  # ... up to 10
MIN_GAIN = 0.25  # the moved optimum must be at least 25% cheaper than b_old


@dataclass(frozen=True)
class Tilt:
    """How a cell's costs are tilted: ``(b / b_old) ** -g`` moves the optimum to ``b_new``."""

    g: float
    b_new: int


@dataclass(frozen=True)
class Drift:
    """One scenario on one workload x GPU for a job of ``recurrences`` recurrences.

    ``g`` and ``b_new`` are None where the optimum does not move: no drift, D1, or a tilted
    scenario on a cell where no tilt moves it (then the scenario is stationary there).
    """

    scenario: str = NONE
    recurrences: int = 0
    b_old: int | None = None
    g: float | None = None
    b_new: int | None = None

    def cost_factor(self, recurrence: int, batch_size: int) -> float:
        """fc(i, b): multiplies the energy and time of every epoch of the run."""
        if self.scenario == GROW:
            return GROWTH_PER_RECURRENCE**recurrence
        if self.g is None or self.b_old is None:
            return 1.0
        if self.scenario == STEP_SILENT and recurrence >= STEP_RECURRENCE:
            return (batch_size / self.b_old) ** -self.g
        if self.scenario == SLOW:
            return (batch_size / self.b_old) ** (-SLOW_SPAN * self.g * recurrence / self.recurrences)
        return 1.0

    def epochs_factor(self, recurrence: int, batch_size: int) -> float:
        """fe(i, b): multiplies the epochs the run needs to reach the target (rounded up)."""
        if self.scenario != STEP_VISIBLE or self.g is None or self.b_new is None or recurrence < STEP_RECURRENCE:
            return 1.0
        return (batch_size / self.b_new) ** -self.g

    @classmethod
    def on(cls, scenario: str, expected_costs: Mapping[int, float], recurrences: int) -> "Drift":
        """The scenario on a cell whose viable batch sizes have these expected costs (no drift)."""
        if scenario not in SCENARIOS:
            raise ValueError(f"Unknown drift scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        b_old = cheapest(expected_costs)
        tilt = choose_tilt(expected_costs) if scenario in TILTED else None
        if tilt is None:
            return cls(scenario, recurrences, b_old)
        return cls(scenario, recurrences, b_old, tilt.g, tilt.b_new)


def cheapest(costs: Mapping[int, float]) -> int:
    """The batch size of lowest cost; ties keep the smaller size."""
    return min(sorted(costs), key=lambda size: costs[size])


def choose_tilt(expected_costs: Mapping[int, float]) -> Tilt | None:
    """The smallest |g| that moves the optimum to a size at least 25% cheaper than b_old.

    g is chosen from expected costs only, so that the scenario is the same whatever a
    policy does; positive g (favouring larger sizes) wins a tie with negative g. None
    when no g up to 10 moves it (e.g. a single viable size).
    """
    for step in range(1, TILT_STEPS + 1):
        for g in (step / TILT_STEPS_PER_UNIT, -step / TILT_STEPS_PER_UNIT):
            b_new = moved_optimum(expected_costs, g)
            if b_new is not None:
                return Tilt(g, b_new)
    return None


def moved_optimum(expected_costs: Mapping[int, float], g: float) -> int | None:
    """The optimum of the costs tilted by ``(b / b_old) ** -g``, if it moved and gained 25%."""
    b_old = cheapest(expected_costs)
    tilted = {size: cost * (size / b_old) ** -g for size, cost in expected_costs.items()}
    b_new = cheapest(tilted)
    if b_new != b_old and tilted[b_new] <= (1 - MIN_GAIN) * tilted[b_old]:
        return b_new
    return None


def epochs_to_target(target_epoch: float, epochs_factor: float, max_epochs: int) -> int | None:
    """The epochs a run needs under drift, rounded up; None when it does not reach the target
    within max_epochs (``target_epoch`` NaN: the recorded run never reached it)."""
    if math.isnan(target_epoch):
        return None
    epochs = math.ceil(target_epoch * epochs_factor)
    return epochs if epochs <= max_epochs else None
