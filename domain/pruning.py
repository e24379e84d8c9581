"""The pruning stage: a few rounds of exploring batch sizes outward from a default.

The round state is never stored. It is derived, every time, from the job's
exploration history, so a replay or a reanalysis reaches the same conclusion
from the same facts.
"""

from dataclasses import dataclass
from typing import Mapping, Sequence

from domain.errors import NoConvergedBatchSizeError


@dataclass(frozen=True)
class Exploration:
    """One Exploration trial of a batch size that was not abandoned."""

    trial_number: int
    finished: bool
    converged: bool
    cost: float | None


@dataclass(frozen=True)
class ExploreBatchSize:
    """Dispatch an Exploration trial: this size has no exploration in this round yet."""

    batch_size: int
    round_number: int
    direction: str  # "down" (default and smaller sizes) or "up" (larger sizes)


@dataclass(frozen=True)
class AwaitExploration:
    """An exploration of this round is still running: serve a Concurrent trial meanwhile."""

    round_number: int
    pending_batch_size: int
    pending_trial_number: int


@dataclass(frozen=True)
class PruningComplete:
    """Every round is over; these sizes survive into the bandit stage (ascending)."""

    survivors: list[int]


PruningStep = ExploreBatchSize | AwaitExploration | PruningComplete


@dataclass(frozen=True)
class PruningProgress:
    """Where the pruning stage stands, for audit views."""

    round_number: int
    candidates: list[int]
    default_batch_size: int


def walk_order(batch_sizes: Sequence[int], default_batch_size: int) -> list[tuple[str, list[int]]]:
    """The default and smaller sizes in decreasing order, then the larger ones increasing."""
    ordered = sorted(batch_sizes)
    split = ordered.index(default_batch_size) + 1
    return [("down", ordered[:split][::-1]), ("up", ordered[split:])]


@dataclass(frozen=True)
class _RoundResult:
    kept: list[int]
    cheapest: int | None


def _play_round(
    candidates: Sequence[int],
    default: int,
    round_number: int,
    explorations: Mapping[int, Sequence[Exploration]],
) -> ExploreBatchSize | AwaitExploration | _RoundResult:
    kept: list[int] = []
    cheapest: tuple[float, int] | None = None
    for direction, sizes in walk_order(candidates, default):
        for batch_size in sizes:
            history = explorations.get(batch_size, ())
            if len(history) <= round_number:
                return ExploreBatchSize(batch_size, round_number, direction)
            exploration = history[round_number]
            if not exploration.finished:
                return AwaitExploration(round_number, batch_size, exploration.trial_number)
            if not exploration.converged:
                break
            kept.append(batch_size)
            assert exploration.cost is not None
            if cheapest is None or exploration.cost < cheapest[0]:
                cheapest = (exploration.cost, batch_size)
    return _RoundResult(sorted(kept), cheapest[1] if cheapest else None)


def next_pruning_step(
    batch_sizes: Sequence[int],
    default_batch_size: int,
    num_pruning_rounds: int,
    explorations: Mapping[int, Sequence[Exploration]],
) -> PruningStep:
    """Decide what the next predict does while the job is in the pruning stage.

    Raises NoConvergedBatchSizeError when a finished round kept no size, since no
    later round or bandit could then be built.
    """
    candidates, default = sorted(batch_sizes), default_batch_size
    for round_number in range(num_pruning_rounds):
        outcome = _play_round(candidates, default, round_number, explorations)
        if not isinstance(outcome, _RoundResult):
            return outcome
        if outcome.cheapest is None:
            raise NoConvergedBatchSizeError(round_number, candidates)
        candidates, default = outcome.kept, outcome.cheapest
    return PruningComplete(candidates)


def pruning_progress(
    batch_sizes: Sequence[int],
    default_batch_size: int,
    num_pruning_rounds: int,
    explorations: Mapping[int, Sequence[Exploration]],
) -> PruningProgress:
    """The round in progress and its candidates (round == num_pruning_rounds once done)."""
    candidates, default = sorted(batch_sizes), default_batch_size
    for round_number in range(num_pruning_rounds):
        outcome = _play_round(candidates, default, round_number, explorations)
        if not isinstance(outcome, _RoundResult) or outcome.cheapest is None:
            return PruningProgress(round_number, candidates, default)
        candidates, default = outcome.kept, outcome.cheapest
    return PruningProgress(num_pruning_rounds, candidates, default)
