"""The per-epoch stop rule: keep training, or finish the trial and say why."""

import math
from dataclasses import dataclass

from domain.bounds import BoundBasis, predicted_cost
from domain.cost import energy_time_cost
from domain.enums import StopReason
from domain.errors import InvalidReportError
from domain.spec import MAX_BATCH_SIZE

# Far above any real run (1e15 s is 30 million years, 1e15 J is 280 GWh), and low
# enough that no cost, reward, sum or bound computed from a report can overflow.
MAX_MEASUREMENT = 1e15
MAX_COUNT = 10**9  # trial numbers and epochs

KEEP_TRAINING_MESSAGE = "Stop condition not met, keep training"
SUCCEEDED_MESSAGE = "Train succeeded"


@dataclass(frozen=True)
class EpochReport:
    """One epoch's cumulative measurements of a trial, as the trainer reports them."""

    trial_number: int
    batch_size: int
    time: float  # seconds since the trial started
    energy: float  # joules since the trial started
    metric: float
    epoch: int

    def __post_init__(self) -> None:
        for name, largest in (("trial_number", MAX_COUNT), ("batch_size", MAX_BATCH_SIZE), ("epoch", MAX_COUNT)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= largest:
                raise InvalidReportError(name, f"must be an integer from 1 to {largest}, got {value!r}")
        for name in ("time", "energy"):
            value = getattr(self, name)
            if not _finite(value) or not 0 <= value <= MAX_MEASUREMENT:
                raise InvalidReportError(name, f"must be a number from 0 to {MAX_MEASUREMENT:g}, got {value!r}")
        if not _finite(self.metric):
            raise InvalidReportError("metric", f"must be a finite number, got {self.metric!r}")


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class StopRule:
    """The job knobs the stop rule reads."""

    eta_knob: float
    beta_knob: float | None
    max_power: float
    target_metric: float
    higher_is_better_metric: bool
    max_epochs: int


@dataclass(frozen=True)
class EpochVerdict:
    stop_train: bool
    converged: bool  # what the trainer is told: reached the target within the cost bound
    cost: float
    reason: StopReason
    message: str


@dataclass(frozen=True)
class CostBound:
    """The cost a run may not exceed, and how it came about (for the message that stops it)."""

    value: float
    meaning: str


NO_BOUND = CostBound(math.inf, "no bound")


def cost_bound(basis: BoundBasis, scale: float = 1.0) -> CostBound:
    """The bound ``basis`` gives at this escalation, with how it came about."""
    value = basis.value(scale)
    return NO_BOUND if value is None else CostBound(value, basis.describe(scale))


def reached_target(rule: StopRule, metric: float) -> bool:
    if rule.higher_is_better_metric:
        return metric >= rule.target_metric
    return metric <= rule.target_metric


def judge_epoch(
    rule: StopRule, bound: CostBound, report: EpochReport, predictive: bool = False, fewest_epochs: int | None = None
) -> EpochVerdict:
    """Decide after one epoch's cumulative measurements, exactly as Zeus does; with
    ``predictive`` (predictive stop), also stop a run predicted to end above its bound
    (``fewest_epochs``: the fewest any converged trial of the job needed)."""
    cost = energy_time_cost(report.energy, report.time, rule.eta_knob, rule.max_power)
    within = bound.value >= cost
    converged = reached_target(rule, report.metric)
    if within and report.epoch < rule.max_epochs and not converged:
        predicted = predicted_cost(cost, report.epoch, fewest_epochs) if predictive else None
        if predicted is not None and predicted > bound.value:
            message = (
                f"Batch Size({report.batch_size}) is predicted to exceed the cost upper bound: "
                f"cost({cost}) after {report.epoch} epochs, predicted({predicted}) > {bound.meaning}"
            )
            return EpochVerdict(True, False, cost, StopReason.PREDICTED_COST_BOUND, message)
        return EpochVerdict(False, False, cost, StopReason.KEEP_TRAINING, KEEP_TRAINING_MESSAGE)
    if converged and within:
        return EpochVerdict(True, True, cost, StopReason.REACHED_TARGET, SUCCEEDED_MESSAGE)
    if not within:
        message = (
            f"Batch Size({report.batch_size}) exceeded the cost upper bound: current cost({cost}) > "
            f"{bound.meaning}"
        )
        return EpochVerdict(True, False, cost, StopReason.COST_BOUND, message)
    message = f"Train failed to converge within max_epoch({rule.max_epochs})"
    return EpochVerdict(True, False, cost, StopReason.MAX_EPOCHS, message)


def already_reported_message(trial_number: int) -> str:
    return f"Result for this trial({trial_number}) is already reported."
