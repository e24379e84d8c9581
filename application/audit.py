"""The read model: every query over the event log, and the views built from it.

The audit routes, the CLI and the dashboard read jobs only through ``JobAudit``;
it is the one place that talks to the recorder (listings, event pages, states at
a version or an instant, trials, replays, exports). It never writes.

Everything returned is JSON primitives. Current and past states come from the
Job aggregate (replayed by the repository); per-trial detail (why a trial got its
batch size, its per-epoch telemetry) comes from the job's events, so the
aggregate stays small however long the history. Current states and trial views are
kept per job by stream version (``ViewCache``): a job whose stream has not moved is
not read again, and one that has is brought up to date from its new events only.

Addressing: a reference is a client job id, which means its latest incarnation
(the live job, or the last deleted one), or a Job aggregate UUID, which names one
incarnation exactly. A job id is looked up first.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from application.catalog import REGISTERED_TOPIC, CatalogEntry, JobCatalog
from application.service import BatchSizeOptimizer
from application.summary import fleet_summary, job_summary
from application.trial_views import DETAILS, TrialFold
from domain.bounds import bound_may_lag
from domain.job import Job
from domain.spec import JobSpec

Progress = Callable[[int, int], None]
_REPLAY_PAGE = 1000
_CACHED_STATES = 256  # a state view is small
_CACHED_FOLDS = 32  # a trial fold holds every trial of its job with its epochs: fewer of them
_CACHED_SUMMARIES = 4096  # a summary is a few numbers
Detailed = Callable[[dict[str, Any]], dict[str, Any]]  # a trial view with its details (TrialFold.detailed)


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
    if isinstance(value, JobSpec):
        return value.to_record()
    return value


def state_view(job: Job) -> dict[str, Any]:
    """The job as a client of the audit API sees it; same shape now and in the past."""
    # Each policy fills in its own part: Zeus's pruning, LSTS's state; arms in one shape for both.
    described = {"pruning": None, "lsts": None, **job.policy.describe(job.policy_state, job)}
    return primitives(
        {
            "job_id": job.job_id,
            "job_uuid": job.id,
            "version": job.version,
            "deleted": job.deleted,
            "registered_at": job.created_on,
            "updated_at": job.modified_on,
            "spec": job.spec.to_record(),
            "stage": job.stage,
            "seed": job.seed,
            "policy": job.spec.policy,
            "policy_version": job.policy_version,
            "generator_state": job.generator_state,
            "min_cost": job.min_cost,
            "min_cost_batch_size": job.min_cost_batch_size if job.min_cost is not None else None,
            "trials": job.trial_tally(),
            "early_stop": early_stop_view(job),
            "recommendation": described["recommendation"],
            "pruning": described["pruning"],
            "arms": described["arms"],
            "lsts": described["lsts"],
        }
    )


def early_stop_view(job: Job) -> dict[str, Any]:
    """The cost bound a trial dispatched now would get, how it comes about, and whether trials
    stopped by it in a row suggest it has fallen behind the job's costs."""
    basis, escalation = job.next_bound()
    spec, in_a_row = job.spec, job.stopped_in_a_row
    warning = None
    if bound_may_lag(in_a_row):
        warning = (
            f"{in_a_row} trials in a row were stopped by the cost bound: if this job's costs are growing, "
            "the bound has fallen behind them"
            + ("" if spec.stop_window and spec.bound_escalation else " (stop_window and bound_escalation guard against it)")
        )
    return {
        "bound": basis.value(escalation),
        "factor": basis.factor,
        "factor_name": basis.factor_name,
        "reference": basis.reference,
        "reference_name": basis.reference_name,
        "escalation": escalation,
        "judged": "at_dispatch" if job.policy.bounds_fixed_at_dispatch else "at_each_report",
        "stop_window": spec.stop_window,
        "bound_escalation": spec.bound_escalation,
        "predictive_stop": spec.predictive_stop,
        "stopped_in_a_row": in_a_row,
        "warning": warning,
    }


# The job list's columns that it can be sorted by (``JobAudit.list_jobs``).
SORTABLE = (
    "job_id", "policy", "gpu_model", "stage", "default_batch_size", "recommended_batch_size",
    "settled", "savings_fraction", "min_cost", "registered_at", "updated_at", "version",
)


@dataclass(frozen=True)
class JobFilters:
    """Which jobs a listing keeps: each given field must equal the job's, and its id must start
    with one of ``prefixes`` when given (a scoped token's jobs)."""

    policy: str | None = None
    gpu_model: str | None = None
    stage: str | None = None
    prefixes: tuple[str, ...] | None = None

    def covers(self, entry: CatalogEntry) -> bool:
        return self.prefixes is None or entry.job_id.startswith(self.prefixes)

    def match(self, row: dict[str, Any]) -> bool:
        fields = {"policy": self.policy, "gpu_model": self.gpu_model, "stage": self.stage}
        return all(value is None or row[name] == value for name, value in fields.items())


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


def trial_row(view: dict[str, Any], why: bool = False) -> dict[str, Any]:
    """A trial as the trial list shows it: without its details (trial_views.DETAILS), but its
    reason if asked (and then without the generator states; the view must be ``detailed``)."""
    row = {key: value for key, value in view.items() if key not in DETAILS}  # primitives already
    if why:
        row["why"] = primitives({key: value for key, value in view["why"].items() if not key.startswith("generator_state")})
    return row


# Job UUID -> (stream version, view), oldest read first.
_Views = OrderedDict[UUID, tuple[int, dict[str, Any]]]


class ViewCache:
    """Per-job views kept by stream version, for the most recently read jobs (LRU, bounded).

    A view is only ever served for the version it was built at, so the cache needs no
    invalidation: a job that changed is simply rebuilt (its trials incrementally).
    """

    def __init__(self, max_states: int = _CACHED_STATES, max_folds: int = _CACHED_FOLDS) -> None:
        self._max_states, self._max_folds = max_states, max_folds
        self._lock = threading.Lock()
        self._states: OrderedDict[UUID, tuple[int, dict[str, Any]]] = OrderedDict()
        self._summaries: OrderedDict[UUID, tuple[int, dict[str, Any]]] = OrderedDict()
        self._folds: OrderedDict[UUID, tuple[threading.Lock, TrialFold]] = OrderedDict()

    def state(self, job_uuid: UUID, version: int) -> dict[str, Any] | None:
        return self._cached(self._states, job_uuid, version)

    def keep_state(self, job_uuid: UUID, version: int, view: dict[str, Any]) -> None:
        self._keep(self._states, job_uuid, version, view, self._max_states)

    def summary(self, job_uuid: UUID, version: int) -> dict[str, Any] | None:
        return self._cached(self._summaries, job_uuid, version)

    def keep_summary(self, job_uuid: UUID, version: int, view: dict[str, Any]) -> None:
        self._keep(self._summaries, job_uuid, version, view, _CACHED_SUMMARIES)

    def _cached(self, views: _Views, job_uuid: UUID, version: int) -> dict[str, Any] | None:
        with self._lock:
            cached = views.get(job_uuid)
            if cached is None or cached[0] != version:
                return None
            views.move_to_end(job_uuid)
            return cached[1]

    def _keep(self, views: _Views, job_uuid: UUID, version: int, view: dict[str, Any], most: int) -> None:
        with self._lock:
            views[job_uuid] = (version, view)
            views.move_to_end(job_uuid)
            while len(views) > most:
                views.popitem(last=False)

    def fold(self, job_uuid: UUID) -> tuple[threading.Lock, TrialFold]:
        """The job's trial fold and the lock to hold while bringing it up to date or reading it."""
        with self._lock:
            entry = self._folds.get(job_uuid)
            if entry is None:
                entry = self._folds[job_uuid] = (threading.Lock(), TrialFold())
            self._folds.move_to_end(job_uuid)
            while len(self._folds) > self._max_folds:
                self._folds.popitem(last=False)
            return entry


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant; one without a zone is taken as UTC. ValueError if unreadable."""
    instant = datetime.fromisoformat(text)
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


class JobAudit:
    """Queries over one optimizer application; never writes."""

    def __init__(self, app: BatchSizeOptimizer) -> None:
        self.app = app
        self.catalog = JobCatalog(app)
        self.cache = ViewCache()

    # -- addressing -----------------------------------------------------------------

    def resolve(self, reference: str) -> UUID:
        """The Job aggregate a reference names (see the module docstring)."""
        name = self.app.job_name(reference)
        if name is not None:
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

    def list_jobs(
        self,
        prefix: str = "",
        after: int = 0,
        limit: int = 50,
        filters: JobFilters | None = None,
        sort: str | None = None,
    ) -> dict[str, Any]:
        """Jobs whose id starts with ``prefix`` and that match ``filters``. Unsorted, in
        registration order from the cursor ``after`` (``next_after`` pages on); sorted by a
        column of ``SORTABLE`` (``-column``: descending), from the offset ``after``
        (``next_offset`` pages on), which reads every matching job."""
        filters = filters or JobFilters()
        if sort is None:
            rows: list[dict[str, Any]] = []
            cursor = after
            while len(rows) <= limit:  # one row more than asked says whether more follow
                entries, more = self.catalog.page(prefix, cursor, limit + 1 - len(rows))
                rows.extend(self._job_rows(entries, filters))
                if not more or not entries:
                    break
                cursor = entries[-1].position
            more = len(rows) > limit
            rows = rows[:limit]
            return {"jobs": rows, "next_after": rows[-1]["cursor"] if more else None, "next_offset": None}
        column, descending = sort.removeprefix("-"), sort.startswith("-")
        if column not in SORTABLE:
            raise ValueError(f"cannot sort by {column!r}; columns: {', '.join(SORTABLE)}")
        entries, _ = self.catalog.page(prefix, 0, None)
        rows = self._job_rows(entries, filters)
        # Rows without a value (no savings yet) go last either way.
        present = sorted((row for row in rows if row[column] is not None), key=lambda row: row[column], reverse=descending)
        ordered = present + [row for row in rows if row[column] is None]
        page = ordered[after : after + limit]
        return {"jobs": page, "next_after": None, "next_offset": after + limit if after + limit < len(ordered) else None}

    def _job_rows(self, entries: list[CatalogEntry], filters: JobFilters) -> list[dict[str, Any]]:
        return [row for row in map(self._job_row, filter(filters.covers, entries)) if filters.match(row)]

    def _job_row(self, entry: CatalogEntry) -> dict[str, Any]:
        view = self.current_state(entry.job_uuid)
        summary = self.job_summary(entry.job_uuid, view)
        return {
            "job_id": view["job_id"],
            "job_uuid": view["job_uuid"],
            "stage": view["stage"],
            # What the list shows of the summary, which states them already.
            **{key: summary[key] for key in ("policy", "gpu_model", "default_batch_size", "recommended_batch_size", "settled")},
            "savings_fraction": summary["savings"]["cost"]["fraction"],
            "trials": view["trials"],
            "pruning": None if view["pruning"] is None else {key: view["pruning"][key] for key in ("round", "num_rounds", "done")},
            "min_cost": view["min_cost"],
            "min_cost_batch_size": view["min_cost_batch_size"],
            "registered_at": view["registered_at"],
            "updated_at": view["updated_at"],
            "deleted": view["deleted"],
            "version": view["version"],
            "cursor": entry.position,
        }

    def job(self, reference: str, version: int | None = None, at: datetime | None = None) -> Job:
        """The job now, right after event ``version``, or as it was at ``at``."""
        job_uuid = self.resolve(reference)
        version = self._checked_version(job_uuid, version, at)
        if version is None:
            return self.app.repository.get(job_uuid, deepcopy_from_cache=False)
        return self.app.repository.get(job_uuid, version=version)

    def state(self, reference: str, version: int | None = None, at: datetime | None = None) -> dict[str, Any]:
        if version is None and at is None:
            return self.current_state(self.resolve(reference))
        return state_view(self.job(reference, version, at))

    def current_state(self, job_uuid: UUID) -> dict[str, Any]:
        """The job's state view now, rebuilt only when its stream moved on since the last read."""
        latest = self.latest_version(job_uuid)
        view = self.cache.state(job_uuid, latest)
        if view is None:
            job = self.app.repository.get(job_uuid, deepcopy_from_cache=False)
            view = state_view(job)
            self.cache.keep_state(job_uuid, job.version, view)
        return view

    def summary(self, reference: str) -> dict[str, Any]:
        """Which batch size to use now, whether the job settled, what it saved (application/summary.py)."""
        return self.job_summary(self.resolve(reference))

    def job_summary(self, job_uuid: UUID, state: dict[str, Any] | None = None) -> dict[str, Any]:
        """The summary of the job, whose current state is ``state`` if given."""
        state = state or self.current_state(job_uuid)
        summary = self.cache.summary(job_uuid, state["version"])
        if summary is None:
            summary = self._read_fold(job_uuid, state["version"], lambda trials, _: job_summary(state, trials))
            self.cache.keep_summary(job_uuid, state["version"], summary)
        return summary

    def fleet_summary(self, prefixes: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Savings summed over every live job (whose id starts with one of ``prefixes``, if
        given), overall and per GPU model."""
        entries, _ = self.catalog.page("", 0, None)
        scope = JobFilters(prefixes=prefixes)
        live = [entry for entry in entries if scope.covers(entry) and not self.catalog.is_deleted(entry.job_uuid)]
        summaries = [self.job_summary(entry.job_uuid) for entry in live]
        return fleet_summary(summaries)

    def domain_events(
        self, reference: str, version: int | None = None, at: datetime | None = None
    ) -> list[DomainEventProtocol[Any]]:
        """The job's events, all of them or up to ``version`` / the instant ``at``."""
        job_uuid = self.resolve(reference)
        last = self._checked_version(job_uuid, version, at)
        return list(self.app.repository.event_store.get(job_uuid, lte=last))

    def trials(
        self, reference: str, version: int | None = None, at: datetime | None = None, why: bool = False
    ) -> list[dict[str, Any]]:
        """Every trial of the job in order, now or as it was at ``version`` / ``at`` (the CLI, CSV)."""
        def rows(trials: dict[int, dict[str, Any]], detailed: Detailed) -> list[dict[str, Any]]:
            return [trial_row(detailed(view) if why else view, why) for view in trials.values()]

        return self._read_trials(reference, version, at, rows)

    def trials_page(
        self,
        reference: str,
        version: int | None = None,
        at: datetime | None = None,
        why: bool = False,
        kind: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        """Trials numbered after ``after`` (of one ``kind`` if given), at most ``limit``, now or as
        they were at ``version`` / ``at``; ``next_after`` pages on. With ``why``, each one's
        recorded reason without the generator states (the one-trial view has them)."""

        def page(trials: dict[int, dict[str, Any]], detailed: Detailed) -> dict[str, Any]:
            chosen: list[dict[str, Any]] = []
            for number in range(after + 1, len(trials) + 1):  # numbered 1.. without gaps
                if kind is None or trials[number]["kind"] == kind:
                    if len(chosen) == limit:
                        return {"trials": chosen, "next_after": chosen[-1]["number"]}
                    chosen.append(trial_row(detailed(trials[number]) if why else trials[number], why))
            return {"trials": chosen, "next_after": None}

        return self._read_trials(reference, version, at, page)

    def trial(self, reference: str, number: int) -> dict[str, Any]:
        def one(trials: dict[int, dict[str, Any]], detailed: Detailed) -> dict[str, Any]:
            if number not in trials:
                raise AuditNotFoundError(f"Job {reference} has no trial {number} (it has {len(trials)})")
            return primitives(detailed(trials[number]))

        return self._read_trials(reference, None, None, one)

    def _read_trials(
        self,
        reference: str,
        version: int | None,
        at: datetime | None,
        read: Callable[[dict[int, dict[str, Any]], Detailed], Any],
    ) -> Any:
        """``read`` over the job's trial views, now or as they were at a past version."""
        job_uuid = self.resolve(reference)
        return self._read_fold(job_uuid, self._checked_version(job_uuid, version, at), read)

    def _read_fold(self, job_uuid: UUID, last: int | None, read: Callable[[dict[int, dict[str, Any]], Detailed], Any]) -> Any:
        """``read`` over the job's trial views, now or as they were at version ``last`` (known to
        exist), and the function giving a view its details: from the job's cached fold, or else
        its stored one (application/trial_views.py), brought up to date with only the events
        it has not seen."""
        lock, fold = self.cache.fold(job_uuid)
        with lock:
            if fold.version == 0:
                self._restore(fold, job_uuid)
            if fold.version < (last if last is not None else self.latest_version(job_uuid)):
                fold.apply(self._events_after(job_uuid, fold.version))
            return read(fold.views(last), fold.detailed)

    def _restore(self, fold: TrialFold, job_uuid: UUID) -> None:
        """Start a fold from the job's stored one, if the store keeps one (on PostgreSQL after
        following the log a little further: it may lag, the events fill in the rest)."""
        store = self.app.trial_views
        if store is None:
            return
        self.app.follow_trial_views()
        stored = store.load(job_uuid)
        if stored is not None:
            fold.restore(stored)

    def _events_after(
        self, job_uuid: UUID, version: int, last: int | None = None
    ) -> Iterator[DomainEventProtocol[Any]]:
        while True:
            batch = list(self.app.repository.event_store.get(job_uuid, gt=version, lte=last, limit=_REPLAY_PAGE))
            yield from batch
            if len(batch) < _REPLAY_PAGE:
                return
            version = batch[-1].originator_version

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
