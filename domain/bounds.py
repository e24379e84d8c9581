"""A trial's cost bound, and the two guards that keep drift from stopping every run.

A trial is stopped once its cost passes ``factor x reference x escalation``:

- the policy gives the factor and the reference (a ``BoundBasis``): Zeus's policy
  ``beta_knob x min_cost``, judged against the reference as of each report; LSTS
  ``beta_explore x best`` or ``beta_bandit x exp(min mean log cost)``, set at dispatch;
- ``stop_window`` (N > 0) makes the reference recent: the policies take it from the last N
  converged trials instead of the whole history, so costs that grow move the bound along;
- ``bound_escalation`` doubles a trial's bound for each trial stopped by the bound in a row
  before its dispatch, so a bound that has fallen behind catches up instead of stopping every run.

Which trials count as "in a row" is the Job's bookkeeping (``Job.stopped_in_a_row``).
"""

import math
from dataclasses import dataclass

from domain.enums import StopReason

# 2^60 times any reference is beyond every cost a report can carry: doubling further changes nothing.
MAX_DOUBLINGS = 60
# What a run stopped by the cost bound reports: passed it, or bound to pass it (predictive stop).
BOUND_STOPS = (StopReason.COST_BOUND, StopReason.PREDICTED_COST_BOUND)
# From this many trials stopped in a row on, views warn that the bound may have fallen behind.
STOPPED_IN_A_ROW_WARNING = 3


def bound_may_lag(stopped_in_a_row: int) -> bool:
    """Whether so many trials in a row were stopped by the bound that it may have fallen
    behind the job's costs (they grow)."""
    return stopped_in_a_row >= STOPPED_IN_A_ROW_WARNING


@dataclass(frozen=True)
class BoundBasis:
    """How a trial's bound comes about: ``factor x reference`` (the policy says whether it is
    fixed when the trial is dispatched or judged against the reference as of each report)."""

    factor: float | None  # None: no bound at all (early stopping off)
    factor_name: str
    reference: float | None  # None: nothing to bound against yet
    reference_name: str

    def value(self, scale: float = 1.0) -> float | None:
        """The bound at this escalation; None: no bound."""
        if self.factor is None or self.reference is None:
            return None
        return self.factor * self.reference * scale

    def describe(self, scale: float = 1.0) -> str:
        """How the bound was computed, for the message that stops a trial."""
        text = f"{self.factor_name}({self.factor})*{self.reference_name}({self.reference})"
        return text if scale == 1.0 else f"{text}*escalation({scale:g})"


def escalation_scale(stopped_in_a_row: int, escalate: bool) -> float:
    """What a trial's bound is multiplied by: 2 per trial stopped by the bound in a row."""
    return math.ldexp(1.0, min(stopped_in_a_row, MAX_DOUBLINGS)) if escalate else 1.0


def predicted_cost(cost: float, epoch: int, fewest_epochs: int | None) -> float:
    """A run's final cost predicted from its cost so far, at the same cost per epoch: a run that
    has not converged after ``epoch`` epochs needs at least one more, and at least as many as
    the fewest any converged trial of the job needed."""
    return cost / epoch * max(epoch + 1, fewest_epochs or 0)
