"""Optimistic concurrency: re-run a command from a fresh load when a race is lost."""

import random
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Protocol, TypeVar

from eventsourcing.persistence import IntegrityError

from application.observation import CommandFinished, Observer, ignore

T = TypeVar("T")


class ConflictLanes(Protocol):
    """A way for the writers of one job to take turns rather than race."""

    def take_turns(self, job_id: str, lost_race: bool) -> ContextManager[None]: ...

    def close(self) -> None: ...


class ConcurrencyConflictError(Exception):
    """Another writer kept winning the race for the same job; the retry budget ran out."""


@dataclass
class ConflictStats:
    """Counters for tests and benchmarks (process-wide); each record is also passed to ``observer``."""

    observer: Observer = ignore
    commands: int = 0
    conflicts: int = 0
    max_retries: int = 0
    exhausted: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, retries: int, exhausted: bool) -> None:
        with self._lock:
            self.commands += 1
            self.conflicts += retries
            self.max_retries = max(self.max_retries, retries)
            self.exhausted += int(exhausted)
        self.observer(CommandFinished(retries, gave_up=exhausted))

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                "commands": self.commands,
                "conflicts_retried": self.conflicts,
                "max_retries": self.max_retries,
                "retry_budget_exhausted": self.exhausted,
            }


@dataclass
class RetryPolicy:
    attempts: int = 40
    base_delay: float = 0.002
    max_delay: float = 0.1
    jitter: random.Random = field(default_factory=random.Random)

    def delay(self, retry: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2**retry)
        return self.jitter.uniform(0, ceiling)


def run_with_retries(
    command: Callable[[], T],
    policy: RetryPolicy,
    stats: ConflictStats,
    take_turns: Callable[[bool], ContextManager[None]] = lambda lost_race: nullcontext(),
) -> T:
    """Run ``command`` (which must load, decide and save) until it saves without conflict.

    The first attempt runs inside ``take_turns(False)``, the retries after a lost
    race inside ``take_turns(True)``: hooks for taking turns with the other writers
    of the same job (see conflict lanes).
    """
    try:
        with take_turns(False):
            result = command()
    except IntegrityError:
        pass
    else:
        stats.record(0, exhausted=False)
        return result
    with take_turns(True):
        for retry in range(1, policy.attempts):
            time.sleep(policy.delay(retry - 1))
            try:
                result = command()
            except IntegrityError:
                continue
            stats.record(retry, exhausted=False)
            return result
    stats.record(policy.attempts, exhausted=True)
    raise ConcurrencyConflictError(
        f"The job changed under {policy.attempts} consecutive attempts by other writers; "
        "retry the request."
    )
