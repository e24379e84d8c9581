"""The per-epoch stop rule: keep training, or finish the trial and say why."""

import math
from dataclasses import dataclass

from domain.cost import energy_time_cost

KEEP_TRAINING = "keep_training"
REACHED_TARGET = "reached_target"
MAX_EPOCHS = "max_epochs"
COST_BOUND = "cost_bound"

KEEP_TRAINING_MESSAGE = "Stop condition not met, keep training"
SUCCEEDED_MESSAGE = "Train succeeded"


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
    reason: str
    message: str


def cost_bound(rule: StopRule, min_cost: float | None) -> float:
    if rule.beta_knob is None or min_cost is None:
        return math.inf
    return rule.beta_knob * min_cost


def reached_target(rule: StopRule, metric: float) -> bool:
    if rule.higher_is_better_metric:
        return metric >= rule.target_metric
    return metric <= rule.target_metric


def judge_epoch(
    rule: StopRule,
    min_cost: float | None,
    batch_size: int,
    time: float,
    energy: float,
    metric: float,
    epoch: int,
) -> EpochVerdict:
    """Decide after one epoch's cumulative measurements, exactly as Zeus does."""
    cost = energy_time_cost(energy, time, rule.eta_knob, rule.max_power)
    bound = cost_bound(rule, min_cost)
    within = bound >= cost
    converged = reached_target(rule, metric)
    if within and epoch < rule.max_epochs and not converged:
        return EpochVerdict(False, False, cost, KEEP_TRAINING, KEEP_TRAINING_MESSAGE)
    if converged and within:
        return EpochVerdict(True, True, cost, REACHED_TARGET, SUCCEEDED_MESSAGE)
    if not within:
        message = (
            f"Batch Size({batch_size}) exceeded the cost upper bound: current cost({cost}) > "
            f"beta_knob({rule.beta_knob})*min_cost({min_cost})"
        )
        return EpochVerdict(True, False, cost, COST_BOUND, message)
    message = f"Train failed to converge within max_epoch({rule.max_epochs})"
    return EpochVerdict(True, False, cost, MAX_EPOCHS, message)


def already_reported_message(trial_number: int) -> str:
    return f"Result for this trial({trial_number}) is already reported."
