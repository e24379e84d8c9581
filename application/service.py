"""The batch size optimizer application: register, predict, report, end, delete.

Every command is a function of the moment it runs at: it loads what it needs, lets
the aggregates decide, and returns what it ``Decided`` (the answer and the changed
aggregates). One unit of work (``_attempt``) then adds the idempotent answer and
saves everything in one transaction, and ``run_with_retries`` runs it again from a
fresh load when another writer won the race: the job's event stream version is the
only arbiter between writers (threads, processes or hosts). A per-process lock per job only spares threads of one process from
racing each other needlessly; correctness never depends on it.
"""

import secrets
import threading
from contextlib import nullcontext
from datetime import datetime, timezone
from time import perf_counter
from typing import Any, Callable, ContextManager, Iterable, Mapping, Sequence
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InterfaceError, IntegrityError, JSONTranscoder, OperationalError, StoredEvent
from eventsourcing.utils import Environment

from application.idempotency import IdempotentResponse, RequestKey
from application.observation import EventsSaved, Observer, ignore
from application.retry import ConflictLanes, ConflictStats, RetryPolicy, run_with_retries
from application.transcodings import TRANSCODINGS
from application.trial_views import JOB_EVENT_TOPICS, TrialViewStore, fold_into_store
from domain.errors import SpecMismatchError, UnknownJobError
from domain.job import Job
from domain.job_name import JobName, job_name_id
from domain.reporting import EpochReport
from domain.spec import ZEUS, JobSpec, SpecLimits

Clock = Callable[[], datetime]


class Decided:
    """What a command decided: the answer for the caller and the aggregates it changed."""

    def __init__(self, answer: Any, *aggregates: Aggregate) -> None:
        self.answer = answer
        self.aggregates = aggregates


# A command: given the moment it runs at, load what it needs and decide.
Command = Callable[[datetime], Decided]


class JobAlreadyStoredError(Exception):
    """An imported job's events are in this store already."""


class OutcomeUnknownError(Exception):
    """The store failed during a commit and cannot tell yet whether the commit went through."""


def _claimed(name: JobName | None, job_id: str, job_uuid: UUID, now: datetime) -> JobName:
    """The job id's name pointed at ``job_uuid``: claimed for the first time, or again after a deletion."""
    if name is None:
        return JobName.claim(job_id, str(job_uuid), now)
    name.reclaim(str(job_uuid), now)
    return name

DEFAULT_LEASE_SECONDS = 86400.0
_MAX_REMEMBERED_JOBS = 100_000
SNAPSHOT_INTERVAL = 200  # events of one job between its snapshots


def apply_events(aggregate: Any, events: Iterable[Any]) -> Any:
    """eventsourcing's default projector without its check of each event against a runtime
    Protocol: on Python 3.11 that isinstance costs about 20 us, more than applying the event."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class _JobLocks:
    """A fixed set of locks striped by job id (bounded memory, no clean-up needed)."""

    def __init__(self, stripes: int = 256) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    def __call__(self, job_id: str) -> threading.Lock:
        return self._locks[hash(job_id) % len(self._locks)]


class BatchSizeOptimizer(Application):
    name = "bso"
    is_snapshotting_enabled = True
    env = {
        "AGGREGATE_CACHE_MAXSIZE": "5000",
    }

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        clock: Clock = utc_now,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        retry_policy: RetryPolicy | None = None,
        conflict_lanes: ConflictLanes | None = None,
        spec_limits: SpecLimits = SpecLimits(),
        default_policy: str = ZEUS,
        observer: Observer = ignore,
    ) -> None:
        super().__init__(env)
        self.spec_limits = spec_limits
        self.default_policy = default_policy
        self.observer = observer
        self.conflict_lanes = conflict_lanes
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.retry_policy = retry_policy or RetryPolicy()
        self.conflict_stats = ConflictStats(observer)
        self._job_locks = _JobLocks()
        # The trial views' read model, where the store keeps one (application/trial_views.py):
        # SQLite folds each commit's events in its transaction; PostgreSQL's readers follow the log.
        self.trial_views: TrialViewStore | None = getattr(self.recorder, "trial_views", None)
        if hasattr(self.recorder, "project"):
            self.recorder.project = self._keep_trial_views
        # Job id -> its Job aggregate's UUID as last resolved: spares reading the
        # JobName stream on every command (a hint, checked on each use).
        self._job_uuids: dict[str, UUID] = {}

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> Environment:
        """The environment, with the cache's fast-forward and deep copies on whatever the
        process environment says: with either off, concurrent writers corrupt each other's
        jobs (and ``save`` relies on fast-forward to keep the cache current)."""
        environment = super().construct_env(name, env)
        for setting in ("AGGREGATE_CACHE_FASTFORWARD", "DEEPCOPY_FROM_AGGREGATE_CACHE"):
            for key in environment.create_keys(setting):  # BSO_-prefixed names are read first
                environment[key] = "y"
        return environment

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        for transcoding in TRANSCODINGS:
            transcoder.register(transcoding)

    # -- commands --------------------------------------------------------------------

    def register_job(
        self, fields: Mapping[str, Any], request: RequestKey | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """Register a job; returns (created, spec with job_id). Same id, same spec: not created.

        ``fields`` are the spec's fields as primitives; ``JobSpec.create`` checks them
        (InvalidSpecError names the field at fault) before anything is written.
        """
        if fields.get("policy") is None:
            fields = {**fields, "policy": self.default_policy}
        spec = JobSpec.create(fields, self.spec_limits)
        if spec.job_id is None:
            spec = spec.with_job_id(self._fresh_job_id(spec.job_id_prefix))
        job_id = spec.job_id
        assert job_id is not None
        created, registered = self._run(job_id, lambda now: self._register(spec, job_id, now), request)
        return bool(created), dict(registered)

    def _register(self, spec: JobSpec, job_id: str, now: datetime) -> "Decided":
        name = self.job_name(job_id)
        if name is not None and name.current is not None:
            existing: Job = self.load(UUID(name.current))
            if existing.spec != spec:
                raise SpecMismatchError(
                    f"Job {job_id} is already registered with a different specification. "
                    "Use a new job_id for a different configuration."
                )
            return Decided([False, existing.spec.to_record()])
        seed = spec.mab_seed if spec.mab_seed is not None else secrets.randbits(63)
        job = Job.register(uuid4(), spec, seed, now)
        return Decided([True, job.spec.to_record()], _claimed(name, job_id, job.id, now), job)

    def _fresh_job_id(self, prefix: str) -> str:
        while True:
            candidate = f"{prefix}-{secrets.token_hex(4)}"
            if self.job_name(candidate) is None:
                return candidate

    def predict(self, job_id: str, request: RequestKey | None = None) -> dict[str, Any]:
        """Dispatch a new trial and say which batch size it trains with."""

        def command(now: datetime) -> Decided:
            job = self.job_at(job_id, now)
            trial = job.dispatch_trial(now)
            return Decided({"job_id": job_id, "batch_size": trial.batch_size, "trial_number": trial.number}, job)

        return self._run(job_id, command, request)

    def report(self, job_id: str, report: EpochReport, request: RequestKey | None = None) -> dict[str, Any]:
        """Record an epoch's cumulative time, energy and metric; say whether to stop."""

        def command(now: datetime) -> Decided:
            job = self.job_at(job_id, now)
            verdict = job.report(report, now)
            answer = {"stop_train": verdict.stop_train, "converged": verdict.converged, "message": verdict.message}
            return Decided(answer, job)

        return self._run(job_id, command, request)

    def end_trial(
        self, job_id: str, trial_number: int, batch_size: int, request: RequestKey | None = None
    ) -> str | None:
        """The trainer is done with this trial; if it never reported a result it is Failed.

        Returns the trial's status afterwards (None from an answer stored before statuses were).
        """

        def command(now: datetime) -> Decided:
            job = self.job_at(job_id, now)
            job.end_trial(trial_number, batch_size, now)
            return Decided(job.trial_status(trial_number), job)

        return self._run(job_id, command, request)

    def delete_job(self, job_id: str, request: RequestKey | None = None) -> None:
        """Hide the job from trainers; its history stays readable."""

        def command(now: datetime) -> Decided:
            job = self.live_job(job_id)
            name = self.job_name(job_id)
            assert name is not None
            job.delete(now)
            name.release(now)
            return Decided(None, name, job)

        self._run(job_id, command, request)

    def save(self, *aggregates: Aggregate) -> Any:  # type: ignore[override]
        """Commit the aggregates' new events in one transaction, snapshot the jobs that passed
        an interval, and tell the observer what was committed and how fast.

        Not eventsourcing's own save: that one checks each object against two runtime
        Protocols (about 20 us each on Python 3.11), to accept bare events and tracking
        records, which this application never saves. Its cache hand-over is not needed
        either: the cache fast-forwards from the store (``construct_env`` pins it on).

        When the store fails in a way that leaves the commit's outcome unknown (the
        connection dropped after the commit was sent), or refuses the events as a conflict
        (the driver re-sent a commit that had gone through), the outcome is resolved by
        reading: the command's events are its own id (each carries the command's instant and
        decisions), so if the store holds exactly them, the command was applied, once.
        Otherwise a conflict is a race lost to another writer (re-decided from a fresh load)
        and a failure is OutcomeUnknownError when the store cannot be read either.
        """
        started = perf_counter()
        events = [event for aggregate in aggregates for event in aggregate.collect_events()]
        try:
            recordings = self.events.put(events, trial_view_events=events)
        except (IntegrityError, OperationalError, InterfaceError) as error:
            if not self._stored_already(events, outcome_unknown=not isinstance(error, IntegrityError)):
                raise
            recordings = None
        self._snapshot_saved_jobs(aggregates, events)
        self.observer(EventsSaved(events, perf_counter() - started))
        return recordings

    def _stored_already(self, events: Sequence[Any], outcome_unknown: bool) -> bool:
        """Whether the store holds these very events (the first is enough: they were committed
        together). ``outcome_unknown`` (the commit failed, not refused as a conflict): a store
        that cannot be read leaves the outcome unknown."""
        first = self.mapper.to_stored_event(events[0])
        try:
            stored = self.recorder.select_events(
                first.originator_id, gt=first.originator_version - 1, lte=first.originator_version
            )
        except (OperationalError, InterfaceError) as unreadable:
            if not outcome_unknown:
                raise
            raise OutcomeUnknownError(
                "The event store failed while this request was being committed and cannot be read "
                "to tell whether it was; retry it with the same Idempotency-Key to be told once"
            ) from unreadable
        return bool(stored) and stored[0].topic == first.topic and stored[0].state == first.state

    def _keep_trial_views(self, session: Any, events: Sequence[Any]) -> None:
        """Fold a commit's events into the trial views, in the commit's transaction."""
        assert self.trial_views is not None
        fold_into_store(self.trial_views, events, session)

    def follow_trial_views(self, limit: int = 1000) -> int:
        """Where readers follow the log to keep the trial views (PostgreSQL): fold the next
        ``limit`` job events into them and record how far, in one transaction (so another
        process's follower waits its turn and never folds an event twice); returns how many."""
        store = self.trial_views
        if store is None or not store.follows_the_log:
            return 0
        with store.transaction() as session:
            position = store.position(session)
            if position is None:  # a database made before the read model: readers fold events
                return 0
            notifications = self.recorder.select_notifications(
                position, limit, topics=JOB_EVENT_TOPICS, inclusive_of_start=False
            )
            if notifications:
                fold_into_store(store, [self.mapper.to_domain_event(n) for n in notifications], session)
                store.advance(session, notifications[-1].id)
            return len(notifications)

    def rebuild_trial_views(self, job_uuids: Iterable[UUID], progress: Callable[[int, int], None] | None = None) -> int:
        """Fold every given job's events afresh into the trial views; returns how many jobs."""
        store = self.trial_views
        if store is None:
            return 0
        uuids = list(job_uuids)
        with store.transaction() as session:
            store.clear(session)
            if store.follows_the_log:  # the follower starts again after what is folded here
                store.position(session)
                store.advance(session, self.recorder.max_notification_id() or 0)
        for done, job_uuid in enumerate(uuids, 1):
            with store.transaction() as session:
                fold_into_store(store, list(self.repository.event_store.get(job_uuid)), session)
            if progress is not None:
                progress(done, len(uuids))
        return len(uuids)

    def _snapshot_saved_jobs(self, objs: Sequence[Any], events: Sequence[Any]) -> None:
        """Snapshot every job whose new events passed a multiple of the interval, as saved.
        (eventsourcing's own snapshotting rebuilds the job from the store first, replaying
        up to an interval of events, and that cost is paid by the command that saves.)"""
        assert self.snapshots is not None
        passed = {event.originator_id for event in events if event.originator_version % SNAPSHOT_INTERVAL == 0}
        snapshots = [Job.Snapshot.take(obj) for obj in objs if isinstance(obj, Job) and obj.id in passed]
        if snapshots:
            self.snapshots.put(snapshots)

    def import_job(self, records: Sequence[StoredEvent], job_id: str, deleted: bool) -> bool:
        """Store an exported job's events exactly as recorded and, in the same transaction,
        point its job id at it unless a live job answers to that id. Returns whether the
        id was claimed; JobAlreadyStoredError if this store holds the job already."""
        job_uuid = records[0].originator_id
        if self.recorder.select_events(job_uuid, limit=1):
            raise JobAlreadyStoredError(f"Job {job_uuid} is already in this database")

        def attempt() -> bool:
            now = self.clock()
            name = self.job_name(job_id)
            if name is not None and name.current is not None:
                self.recorder.insert_events(list(records))
                return False
            name = _claimed(name, job_id, job_uuid, now)
            if deleted:
                name.release(now)
            claim = [self.mapper.to_stored_event(event) for event in name.collect_events()]
            self.recorder.insert_events([*records, *claim])
            return True

        return run_with_retries(attempt, self.retry_policy, self.conflict_stats)

    # -- the unit of work -----------------------------------------------------------------

    def _run(self, job_id: str, command: Command, request: RequestKey | None = None) -> Any:
        with self._job_locks(job_id):
            return run_with_retries(
                lambda: self._attempt(command, request),
                self.retry_policy,
                self.conflict_stats,
                take_turns=self._take_turns(job_id),
            )

    def _attempt(self, command: Command, request: RequestKey | None) -> Any:
        """One try: a repeated request gets its stored answer; a first one is decided and saved
        with its answer, atomically, so a retry after any failure finds both or neither."""
        if request is not None:
            try:
                return self.load(request.record_id).answer(request)
            except AggregateNotFoundError:
                pass
        now = self.clock()
        decided = command(now)
        changed = [aggregate for aggregate in decided.aggregates if aggregate.pending_events]
        if request is not None:
            changed.append(IdempotentResponse.record(request, decided.answer, now))
        if changed:  # an answer read from state alone needs no write transaction
            self.save(*changed)
        return decided.answer

    def _take_turns(self, job_id: str) -> Callable[[bool], ContextManager[None]]:
        lanes = self.conflict_lanes
        if lanes is None:
            return lambda lost_race: nullcontext()
        return lambda lost_race: lanes.take_turns(job_id, lost_race)

    def close(self) -> None:
        if self.conflict_lanes is not None:
            self.conflict_lanes.close()
        super().close()

    # -- loading -----------------------------------------------------------------------

    def load(self, aggregate_id: UUID) -> Any:
        """A command's own copy of the aggregate, from the cache brought up to date."""
        return self.repository.get(aggregate_id, projector_func=apply_events)

    def job_name(self, job_id: str) -> JobName | None:
        """The name a client job id has had, or None if it was never registered."""
        try:
            return self.load(job_name_id(job_id))
        except AggregateNotFoundError:
            return None

    def live_job(self, job_id: str) -> Job:
        """The job currently registered under this id; UnknownJobError if none."""
        remembered = self._job_uuids.get(job_id)
        if remembered is not None:
            # Loading fast-forwards from the store, so a deletion by any process shows
            # here; only then is the name (which a new registration moves) read again.
            job = self.load(remembered)
            if not job.deleted:
                return job
        name = self.job_name(job_id)
        if name is None or name.current is None:
            raise UnknownJobError(f"Unknown job({job_id}). Please register the job first")
        if len(self._job_uuids) >= _MAX_REMEMBERED_JOBS:
            self._job_uuids.clear()
        self._job_uuids[job_id] = UUID(name.current)
        return self.load(UUID(name.current))

    def run_cost_bound(self, job_id: str, trial_number: int) -> float | None:
        """The cost bound decided for an open trial at dispatch (see Job.run_bound)."""
        return self.live_job(job_id).run_bound(trial_number)

    def job_at(self, job_id: str, now: datetime) -> Job:
        """The live job as of ``now``: trials not heard from within the lease are expired first."""
        job = self.live_job(job_id)
        job.expire_stale_trials(now, self.lease_seconds)
        return job
