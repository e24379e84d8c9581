"""The named states of a job and of its trials.

String enums: the event transcoder stores them as their plain values, so events
written before these types existed read back equal to them.
"""

from enum import StrEnum


class Stage(StrEnum):
    PRUNING = "Pruning"  # Zeus's policy, before its bandit
    LOCAL_SEARCH = "LocalSearch"  # LSTS, before its bandit
    BANDIT = "MAB"


class TrialKind(StrEnum):
    EXPLORATION = "Exploration"  # a pruning round's try of one batch size
    CONCURRENT = "Concurrent"  # a stand-in while a pruning exploration is still running
    BANDIT = "MAB"  # chosen by the bandit


class TrialStatus(StrEnum):
    DISPATCHED = "Dispatched"
    SUCCEEDED = "Succeeded"  # got its final report (converged or not)
    FAILED = "Failed"  # ended by the trainer or expired before a final report


class StopReason(StrEnum):
    KEEP_TRAINING = "keep_training"
    REACHED_TARGET = "reached_target"
    MAX_EPOCHS = "max_epochs"
    COST_BOUND = "cost_bound"
    PREDICTED_COST_BOUND = "predicted_cost_bound"  # predictive stop: bound to pass it (domain/bounds.py)
    ENDED = "ended"
    EXPIRED = "expired"
