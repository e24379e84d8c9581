"""Read-only views of jobs for operators: lists, states, trials, events, time travel.

Everything returned is JSON primitives. Current and past states come from the
Job aggregate (replayed by the repository); per-trial detail (why a trial got its
batch size, its per-epoch telemetry) comes from the job's events, so the
aggregate stays small however long the history.

Addressing: a reference is a client job id, which means its latest incarnation
(the live job, or the last deleted one), or a Job aggregate UUID, which names one
incarnation exactly. A job id is looked up first.
"""

from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import DomainEventProtocol

from application.catalog import REGISTERED_TOPIC, JobCatalog
from application.service import BatchSizeOptimizer
from application.trial_history import TrialHistory
from domain.job import DISPATCHED, FAILED, SUCCEEDED, Job
from domain.job_name import JobName, job_name_id
from domain.pruning import pruning_progress

Progress = Callable[[int, int], None]
_REPLAY_PAGE = 1000


class AuditNotFoundError(LookupError):
    """No job, trial or version answers to what was asked for."""


def primitives(value: Any) -> Any:
    """``value`` with UUIDs and datetimes as strings, tuples as lists: JSON-ready."""
    if isinstance(value, dict):
        return {str(key): primitives(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [primitives(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def state_view(job: Job) -> dict[str, Any]:
    """The job as a client of the audit API sees it; same shape now and in the past."""
    statuses = Counter(job.trial_statuses)
    progress = pruning_progress(
        job.batch_sizes, job.spec["default_batch_size"], job.spec["num_pruning_rounds"], job.exploration_history()
    )
    return primitives(
        {
            "job_id": job.job_id,
            "job_uuid": job.id,
            "version": job.version,
            "deleted": job.deleted,
            "registered_at": job.created_on,
            "updated_at": job.modified_on,
            "spec": job.spec,
            "stage": job.stage,
            "seed": job.seed,
            "policy_version": job.policy_version,
            "generator_state": job.generator_state,
            "min_cost": job.min_cost,
            "min_cost_batch_size": job.min_cost_batch_size if job.min_cost is not None else None,
            "trials": {
                "total": job.trial_count,
                "dispatched": statuses[DISPATCHED],
                "succeeded": statuses[SUCCEEDED],
                "failed": statuses[FAILED],
                "converged": job.trial_converged.count(True),
                "not_converged": job.trial_converged.count(False),
            },
            "pruning": {
                "round": progress.round_number,
                "num_rounds": job.spec["num_pruning_rounds"],
                "survivors": progress.candidates,
                "default_batch_size": progress.default_batch_size,
            },
            "arms": [arm.to_record() for arm in job.arm_list()],
        }
    )


def best_arm(arms: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The observed arm with the highest posterior mean reward (lowest mean cost), if any."""
    observed = [arm for arm in arms if arm["num_observations"] > 0]
    return max(observed, key=lambda arm: arm["mean"], default=None)


def event_view(stored_topic: str, event: DomainEventProtocol[Any]) -> dict[str, Any]:
    payload = {
        key: value
        for key, value in vars(event).items()
        if key not in ("originator_id", "originator_version", "timestamp", "originator_topic")
    }
    return primitives(
        {
            "type": stored_topic,
            "version": event.originator_version,
            "timestamp": event.timestamp,
            "payload": payload,
        }
    )


def trial_views(
    events: Iterable[DomainEventProtocol[Any]], trials: dict[int, dict[str, Any]] | None = None
) -> dict[int, dict[str, Any]]:
    """Every trial of a job with its epochs and reasons, read from the job's events; JSON-ready
    (instants as ISO-8601 text). Given the ``trials`` folded from the events before these,
    brings them up to date in place.
    """
    trials = {} if trials is None else trials
    for event in events:
        if isinstance(event, Job.TrialDispatched):
            trials[event.number] = {
                "number": event.number,
                "batch_size": event.batch_size,
                "kind": event.kind,
                "status": DISPATCHED,
                "epochs_reported": 0,
                "epoch": None,
                "time": None,
                "energy": None,
                "metric": None,
                "cost": None,
                "converged": None,
                "stop_reason": None,
                "dispatched_at": event.timestamp.isoformat(),
                "finished_at": None,
                "why": {**event.reason, "generator_state_after": event.generator_state},
                "epochs": [],
                "outcome": None,
            }
        elif isinstance(event, (Job.TrialProgressReported, Job.TrialReported)):
            trial = trials[event.number]
            telemetry = {
                "epoch": event.epoch,
                "time": event.time,
                "energy": event.energy,
                "metric": event.metric,
                "cost": event.cost,
            }
            trial["epochs"].append({**telemetry, "reported_at": event.timestamp.isoformat(), "final": False})
            trial.update(telemetry, epochs_reported=len(trial["epochs"]))
            if isinstance(event, Job.TrialReported):
                trial["epochs"][-1]["final"] = True
                trial.update(
                    status=SUCCEEDED,
                    converged=event.converged,
                    stop_reason=event.reason,
                    finished_at=event.timestamp.isoformat(),
                    outcome={
                        "message": event.message,
                        "min_cost_lowered": event.min_cost_lowered,
                        "arm_after": event.arm,
                    },
                )
        elif isinstance(event, Job.TrialEnded):
            trials[event.number].update(status=FAILED, stop_reason="ended", finished_at=event.timestamp.isoformat())
        elif isinstance(event, Job.TrialExpired):
            trials[event.number].update(
                status=FAILED,
                stop_reason="expired",
                finished_at=event.timestamp.isoformat(),
                outcome={"last_heard_at": event.last_heard_at, "lease_seconds": event.lease_seconds},
            )
    return trials


def trial_row(view: dict[str, Any], why: bool) -> dict[str, Any]:
    """A trial of the list: the view without its epochs and outcome, JSON-ready.

    A shallow copy rather than ``primitives``, which would cost far more on a 10,000-trial
    list: the views hold their instants as text already, and a reason, read from an
    event's JSON and never changed afterwards, is JSON too.
    """
    row = {key: value for key, value in view.items() if key not in ("why", "epochs", "outcome")}
    if why:
        row["why"] = {key: value for key, value in view["why"].items() if not key.startswith("generator_state")}
    return row


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant; one without a zone is taken as UTC. ValueError if unreadable."""
    instant = datetime.fromisoformat(text)
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


class JobAudit:
    """Queries over one optimizer application; never writes."""

    def __init__(self, app: BatchSizeOptimizer) -> None:
        self.app = app
        self.catalog = JobCatalog(app)
        self.history = TrialHistory(app, trial_views)

    # -- addressing -----------------------------------------------------------------

    def resolve(self, reference: str) -> UUID:
        """The Job aggregate a reference names (see the module docstring)."""
        try:
            name = self.app.repository.get(job_name_id(reference), deepcopy_from_cache=False)
        except AggregateNotFoundError:
            name = None
        if isinstance(name, JobName):
            return UUID(name.incarnations[-1])
        try:
            job_uuid = UUID(reference)
        except ValueError:
            raise AuditNotFoundError(f"Unknown job({reference})") from None
        first = self.app.recorder.select_events(job_uuid, limit=1)
        if not first or first[0].topic != REGISTERED_TOPIC:
            raise AuditNotFoundError(f"Unknown job({reference})")
        return job_uuid

    def latest_version(self, job_uuid: UUID) -> int:
        return self.app.recorder.select_events(job_uuid, desc=True, limit=1)[0].originator_version

    def version_at(self, job_uuid: UUID, instant: datetime) -> int:
        """The version right after the last event at or before ``instant``."""
        version = 0
        for event in self.app.repository.event_store.get(job_uuid):
            if event.timestamp > instant:
                break
            version = event.originator_version
        if version == 0:
            raise AuditNotFoundError(f"Job {job_uuid} was not yet registered at {instant.isoformat()}")
        return version

    def _checked_version(self, job_uuid: UUID, version: int | None, at: datetime | None) -> int | None:
        if at is not None:
            return self.version_at(job_uuid, at)
        if version is not None:
            latest = self.latest_version(job_uuid)
            if not 1 <= version <= latest:
                raise AuditNotFoundError(f"Job {job_uuid} has no version {version} (latest is {latest})")
        return version

    # -- queries ------------------------------------------------------------------------

    def list_jobs(self, prefix: str = "", after: int = 0, limit: int = 50) -> dict[str, Any]:
        entries, more = self.catalog.page(prefix, after, limit)
        rows = []
        for entry in entries:
            view = state_view(self.app.repository.get(entry.job_uuid, deepcopy_from_cache=False))
            rows.append(
                {
                    "job_id": view["job_id"],
                    "job_uuid": view["job_uuid"],
                    "stage": view["stage"],
                    "trials": view["trials"],
                    "pruning": {key: view["pruning"][key] for key in ("round", "num_rounds")},
                    "best_arm": best_arm(view["arms"]),
                    "min_cost": view["min_cost"],
                    "min_cost_batch_size": view["min_cost_batch_size"],
                    "registered_at": view["registered_at"],
                    "updated_at": view["updated_at"],
                    "deleted": view["deleted"],
                    "version": view["version"],
                    "cursor": entry.position,
                }
            )
        return {"jobs": rows, "next_after": entries[-1].position if more else None}

    def job(self, reference: str, version: int | None = None, at: datetime | None = None) -> Job:
        """The job now, right after event ``version``, or as it was at ``at``."""
        job_uuid = self.resolve(reference)
        version = self._checked_version(job_uuid, version, at)
        if version is None:
            return self.app.repository.get(job_uuid, deepcopy_from_cache=False)
        return self.app.repository.get(job_uuid, version=version)

    def state(self, reference: str, version: int | None = None, at: datetime | None = None) -> dict[str, Any]:
        return state_view(self.job(reference, version, at))

    def domain_events(
        self, reference: str, version: int | None = None, at: datetime | None = None
    ) -> list[DomainEventProtocol[Any]]:
        """The job's events, all of them or up to ``version`` / the instant ``at``."""
        job_uuid = self.resolve(reference)
        last = self._checked_version(job_uuid, version, at)
        return list(self.app.repository.event_store.get(job_uuid, lte=last))

    def trials(
        self,
        reference: str,
        version: int | None = None,
        at: datetime | None = None,
        why: bool = False,
        kind: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The trials (as they were at ``version`` or ``at``), of one ``kind`` if given, numbered
        after ``after``, at most ``limit`` of them; with ``why``, each one's recorded reason
        without the generator states, which only the one-trial view carries."""
        job_uuid = self.resolve(reference)
        last = self._checked_version(job_uuid, version, at)

        def rows(views: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
            chosen = [view for number, view in views.items() if number > after and kind in (None, view["kind"])]
            return [trial_row(view, why) for view in chosen[:limit]]

        return self.history.views(job_uuid, last, rows)

    def trial(self, reference: str, number: int) -> dict[str, Any]:
        def one(views: dict[int, dict[str, Any]]) -> dict[str, Any]:
            if number not in views:
                raise AuditNotFoundError(f"Job {reference} has no trial {number} (it has {len(views)})")
            return primitives(views[number])

        return self.history.views(self.resolve(reference), None, one)

    def events(self, reference: str, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """Events with versions after ``after``, in order; ``next_after`` pages on."""
        job_uuid = self.resolve(reference)
        stored = self.app.recorder.select_events(job_uuid, gt=after, limit=limit + 1)
        page = stored[:limit]
        views = [event_view(record.topic, self.app.mapper.to_domain_event(record)) for record in page]
        return {"events": views, "next_after": page[-1].originator_version if len(stored) > limit else None}

    def replay(
        self,
        reference: str,
        version: int | None = None,
        at: datetime | None = None,
        progress: Progress | None = None,
    ) -> Job:
        """Rebuild the job event by event, ignoring snapshots and caches (a full audit replay)."""
        job_uuid = self.resolve(reference)
        last = self._checked_version(job_uuid, version, at) or self.latest_version(job_uuid)
        job: Any = None
        done = 0
        while done < last:
            batch = list(self.app.repository.event_store.get(job_uuid, gt=done, lte=last, limit=_REPLAY_PAGE))
            for event in batch:
                job = event.mutate(job)
            done = batch[-1].originator_version
            if progress is not None:
                progress(done, last)
        assert isinstance(job, Job)
        return job

    def stored_events(self, reference: str) -> Iterator[Any]:
        """The job's stored records in order, a page at a time (for export)."""
        job_uuid = self.resolve(reference)
        done = 0
        while True:
            batch = self.app.recorder.select_events(job_uuid, gt=done, limit=_REPLAY_PAGE)
            if not batch:
                return
            yield from batch
            done = batch[-1].originator_version
