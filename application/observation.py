"""What the application tells an observer (metrics) about its work, as plain values.

The application accepts one ``Observer`` callable and calls it after each command
and after each successful save; the observer must be quick and must not raise.
Nothing here knows about any metrics library.
"""

from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class CommandFinished:
    """A command saved its events, was answered from a stored key, or gave up."""

    retries: int  # attempts lost to a concurrent writer and re-run
    gave_up: bool  # every attempt lost: the client got a 409


@dataclass(frozen=True)
class EventsSaved:
    """Events committed to the event store by one save, and how long the save took."""

    events: Sequence[Any]
    seconds: float


Observation = CommandFinished | EventsSaved
Observer = Callable[[Observation], None]


def ignore(observation: Observation) -> None:
    """The observer of an application nobody watches."""
