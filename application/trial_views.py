"""The per-trial view of a job (its epochs, outcome and why it got its batch size), folded from
the job's events, and kept as a read model beside them.

``TrialFold`` folds a job's events into one view per trial, remembering at which version of
the job's stream each part of a trial appeared, so that ``views`` gives every trial as it was
at any earlier version without reading the events again.

The fold is also persisted (``TrialViewStore``, implemented in infrastructure/trial_view_store.py):
on SQLite in the same transaction as the events it folds, on PostgreSQL by a follower of the
event log that records how far it has read. A reader restores the stored fold and folds on top
only the events it has not seen, so a long job reads fast after a restart (a trial's details,
most of its bytes, are decoded only when read: the trial lists need none), and a view is never
older than the events: a store that lags (or a job stored before the read model existed)
costs time, never correctness. ``bso rebuild-views`` folds every job afresh.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, ContextManager, Iterable, Protocol, Sequence
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from domain.bandit import current_arm_record
from domain.enums import Stage, StopReason, TrialStatus
from domain.job import Job

Event = DomainEventProtocol[Any]
JOB_EVENTS = (
    Job.Registered, Job.StageAdvancedToMAB, Job.TrialDispatched, Job.TrialProgressReported,
    Job.TrialReported, Job.TrialEnded, Job.TrialExpired, Job.PolicyObserved, Job.Deleted,
)
JOB_EVENT_TOPICS = [event.TOPIC for event in JOB_EVENTS]
_TELEMETRY = ("epoch", "time", "energy", "metric", "cost")
# The parts of a trial's view that the trial lists do not show, stored apart and decoded only
# when asked for: most of a stored view's bytes (its why holds the generator states and arms).
DETAILS = ("why", "epochs", "outcome", "observation")
# The rest of a view, in the order the store keeps their values (a list: read fast, no names).
LISTED = (
    "number", "batch_size", "kind", "status", "epochs_reported", *_TELEMETRY, "converged",
    "stop_reason", "cost_bound", "bound_scale", "dispatched_at", "finished_at",
)


class _BanditMemory:
    """The arms and the generator state as the events left them, so that a bandit trial's
    "why" shows what it was decided from (older TrialDispatched events recorded both, and
    show them as recorded)."""

    def __init__(self, arms: dict[int, dict[str, Any]] | None = None, generator_state: dict[str, Any] | None = None) -> None:
        self.arms = arms or {}
        self.generator_state = generator_state

    def observe(self, event: Event) -> None:
        if isinstance(event, Job.Registered):
            self.generator_state = event.generator_state
        elif isinstance(event, Job.StageAdvancedToMAB):
            self.arms = {arm["batch_size"]: arm for arm in event.arms}
        elif isinstance(event, Job.TrialReported) and event.arm is not None:
            self.arms[event.batch_size] = event.arm

    def why(self, event: Job.TrialDispatched) -> dict[str, Any]:
        why = {**_counted_from_one(event.reason), "generator_state_after": event.generator_state}
        if event.generator_state is not None:
            why.setdefault("generator_state_before", self.generator_state)
            self.generator_state = event.generator_state
        if event.generator_state is not None and event.reason.get("stage") == Stage.BANDIT:
            recorded = why.get("arms")  # Zeus's bandit: the arms it drew from
            why["arms"] = (
                [current_arm_record(arm) for arm in recorded]
                if recorded is not None
                else [self.arms[size] for size in sorted(self.arms)]
            )
        return why

    def to_record(self) -> dict[str, Any]:
        return {"arms": [self.arms[size] for size in sorted(self.arms)], "generator_state": self.generator_state}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "_BanditMemory":
        return cls({arm["batch_size"]: arm for arm in record["arms"]}, record["generator_state"])


def _counted_from_one(reason: dict[str, Any]) -> dict[str, Any]:
    """A dispatch reason with its pruning round counted from 1 (events count from 0)."""
    return {**reason, "round": reason["round"] + 1} if "round" in reason else dict(reason)


@dataclass
class TrialVersions:
    """At which version of the job's stream each part of a trial appeared."""

    dispatched: int
    epochs: list[int] = field(default_factory=list)
    finished: int | None = None
    observed: int | None = None

    def after(self, version: int) -> bool:
        """Whether a part of the trial appeared after ``version``."""
        return max(self.epochs[-1] if self.epochs else 0, self.finished or 0, self.observed or 0) > version


class TrialFold:
    """Every trial of a job with its epochs and reasons, folded from the job's events.

    It remembers the version it has read up to, so bringing it up to date reads only
    the events appended since (a repeated read of an unchanged job reads none). A fold
    restored from the store decodes a trial's details (``DETAILS``) only when they are
    asked for (``detailed``) or an event changes them: the lists need none of them.
    """

    def __init__(self) -> None:
        self.version = 0
        self._trials: dict[int, dict[str, Any]] = {}
        self._versions: dict[int, TrialVersions] = {}
        self._undecoded: dict[int, Callable[[], dict[str, Any]]] = {}
        self.bandit = _BanditMemory()

    def apply(self, events: Iterable[Event]) -> None:
        for event in events:
            self._apply(event)
            self.version = event.originator_version

    def restore(self, stored: "StoredFold") -> None:
        """Take a stored fold's state as this one's."""
        self.version = stored.version
        self.bandit = _BanditMemory.from_record(stored.memory)
        self._trials = {number: trial.view for number, trial in stored.trials.items()}
        self._versions = {number: trial.versions for number, trial in stored.trials.items()}
        self._undecoded = {number: trial.details for number, trial in stored.trials.items()}

    def views(self, version: int | None = None) -> dict[int, dict[str, Any]]:
        """Every trial, now or as it was right after event ``version`` (at most this fold's
        version); without its details until ``detailed`` is asked for them."""
        if version is None or version >= self.version:
            return self._trials
        past = {}
        for number, trial in self._trials.items():
            versions = self._versions[number]
            if versions.dispatched <= version:  # shared if nothing of it came later: views never change a trial
                past[number] = _trial_as_of(self.detailed(trial), versions, version) if versions.after(version) else trial
        return past

    def detailed(self, view: dict[str, Any]) -> dict[str, Any]:
        """A view of ``views`` with its details (decoded into the fold's own view, if restored)."""
        decode = self._undecoded.pop(view["number"], None)
        if decode is not None:
            self._trials[view["number"]].update(decode())
        return view

    def stored(self, numbers: Iterable[int]) -> "StoredFold":
        """This fold as the store keeps it, with only the given trials."""
        trials = {number: self._stored_trial(number) for number in numbers}
        return StoredFold(self.version, self.bandit.to_record(), trials)

    def _stored_trial(self, number: int) -> "StoredTrial":
        trial = self.detailed(self._trials[number])
        view = {key: value for key, value in trial.items() if key not in DETAILS}
        return StoredTrial(view, self._versions[number], lambda: {key: trial[key] for key in DETAILS})

    def _apply(self, event: Event) -> None:
        trials, version = self._trials, event.originator_version
        number = getattr(event, "number", None)
        if number in self._undecoded:  # its details change too
            self.detailed(trials[number])
        self.bandit.observe(event)
        instant = event.timestamp.isoformat()
        if isinstance(event, Job.TrialDispatched):
            trials[event.number] = {
                "number": event.number,
                "batch_size": event.batch_size,
                "kind": event.kind,
                "status": TrialStatus.DISPATCHED,
                "epochs_reported": 0,
                **dict.fromkeys(_TELEMETRY),
                "converged": None,
                "stop_reason": None,
                "cost_bound": event.cost_bound,
                "bound_scale": event.bound_scale,
                "dispatched_at": instant,
                "finished_at": None,
                "why": self.bandit.why(event),
                "epochs": [],
                "outcome": None,
                "observation": None,  # LSTS: what the finished run changed in the policy's state
            }
            self._versions[event.number] = TrialVersions(version)
        elif isinstance(event, (Job.TrialProgressReported, Job.TrialReported)):
            trial = trials[event.number]
            telemetry = {name: getattr(event, name) for name in _TELEMETRY}
            trial["epochs"].append({**telemetry, "reported_at": instant, "final": False})
            trial.update(telemetry, epochs_reported=len(trial["epochs"]))
            self._versions[event.number].epochs.append(version)
            if isinstance(event, Job.TrialReported):
                trial["epochs"][-1]["final"] = True
                trial.update(
                    status=TrialStatus.SUCCEEDED,
                    converged=event.converged,
                    stop_reason=event.reason,
                    finished_at=instant,
                    outcome={
                        "message": event.message,
                        "min_cost_lowered": event.min_cost_lowered,
                        "arm_after": event.arm,
                    },
                )
                self._versions[event.number].finished = version
        elif isinstance(event, Job.TrialEnded):
            trials[event.number].update(status=TrialStatus.FAILED, stop_reason=StopReason.ENDED, finished_at=instant)
            self._versions[event.number].finished = version
        elif isinstance(event, Job.TrialExpired):
            trials[event.number].update(
                status=TrialStatus.FAILED,
                stop_reason=StopReason.EXPIRED,
                finished_at=instant,
                outcome={"last_heard_at": event.last_heard_at, "lease_seconds": event.lease_seconds},
            )
            self._versions[event.number].finished = version
        elif isinstance(event, Job.PolicyObserved):
            trials[event.number]["observation"] = event.observation
            self._versions[event.number].observed = version


def _trial_as_of(trial: dict[str, Any], versions: TrialVersions, version: int) -> dict[str, Any]:
    """One trial as it was right after event ``version``: the epochs reported by then, and not
    finished or observed if that came later."""
    reported = sum(1 for at in versions.epochs if at <= version)
    past = {**trial, "epochs": trial["epochs"][:reported], "epochs_reported": reported}
    last = past["epochs"][-1] if reported else dict.fromkeys(_TELEMETRY)
    past.update({name: last[name] for name in _TELEMETRY})
    if versions.finished is not None and versions.finished > version:
        past.update(status=TrialStatus.DISPATCHED, converged=None, stop_reason=None, finished_at=None, outcome=None)
    if versions.observed is not None and versions.observed > version:
        past["observation"] = None
    return past


@dataclass(frozen=True)
class StoredTrial:
    """A trial as the read model keeps it: its view without its details, the versions its
    parts appeared at, and its details, decoded when called."""

    view: dict[str, Any]
    versions: TrialVersions
    details: Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class StoredFold:
    """A job's fold as the read model keeps it: up to which version, the bandit memory, and
    its trials."""

    version: int
    memory: dict[str, Any]
    trials: dict[int, StoredTrial]


class TrialViewStore(Protocol):
    """Where the folds are kept (infrastructure/trial_view_store.py). A ``session`` is one of
    its transactions (on SQLite, the one the events are written in)."""

    follows_the_log: bool  # True: readers keep it by following the event log (PostgreSQL)

    def transaction(self) -> ContextManager[Any]: ...

    def load(self, job_uuid: UUID, numbers: Sequence[int] | None = None, session: Any = None) -> StoredFold | None:
        """The job's stored fold (only the given trials, if ``numbers``); None if none."""

    def save(self, job_uuid: UUID, fold: StoredFold, session: Any) -> None:
        """Write the job's fold: its version and memory, and the trials it holds."""

    def clear(self, session: Any) -> None: ...

    def position(self, session: Any) -> int | None:
        """How far the follower has read the log (locked for the session); None: the database
        has no read model yet."""

    def advance(self, session: Any, position: int) -> None: ...


def fold_into_store(store: TrialViewStore, events: Sequence[Event], session: Any) -> None:
    """Fold newly stored events into the stored folds of their jobs, in ``session``.

    A job's events are folded only onto a stored fold that ends right before them (or from
    scratch at its registration): a job stored before the read model existed is left to
    ``bso rebuild-views``, and readers fold its events themselves meanwhile.
    """
    jobs = (event for event in events if isinstance(event, JOB_EVENTS))
    for job_uuid, job_events in groupby(jobs, key=lambda event: event.originator_id):
        batch = list(job_events)
        numbers = sorted({event.number for event in batch if hasattr(event, "number")})
        first = batch[0].originator_version
        stored = None if first == 1 else store.load(job_uuid, numbers, session)
        if first != 1 and (stored is None or stored.version != first - 1):
            continue
        fold = TrialFold()
        if stored is not None:
            fold.restore(stored)
        fold.apply(batch)
        store.save(job_uuid, fold.stored(numbers), session)


def trial_record(trial: StoredTrial) -> tuple[list[Any], dict[str, Any]]:
    """A stored trial as JSON values: the values of its view (``LISTED``) followed by its
    versions, and its details (as the events gave them: JSON values already)."""
    versions = trial.versions
    values = [trial.view[name] for name in LISTED]
    return [*values, versions.dispatched, versions.epochs, versions.finished, versions.observed], trial.details()


def trial_from_record(record: Sequence[Any], details: Callable[[], dict[str, Any]]) -> StoredTrial:
    view = dict(zip(LISTED, record))
    return StoredTrial(view, TrialVersions(*record[len(LISTED):]), details)
