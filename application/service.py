"""The batch size optimizer application: register, predict, report, end, delete.

Every command is get -> decide -> save, run by ``run_with_retries``: the job's
event stream version is the only arbiter between writers (threads, processes or
hosts). A per-process lock per job only spares threads of one process from
racing each other needlessly; correctness never depends on it.
"""

import secrets
import threading
from contextlib import nullcontext
from datetime import datetime, timezone
from time import perf_counter
from typing import Any, Callable, ContextManager, Mapping
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate

from application.idempotency import IdempotentResponse, RequestKey
from application.observation import EventsSaved, Observer, ignore
from application.retry import ConflictLanes, ConflictStats, RetryPolicy, run_with_retries
from domain.errors import SpecMismatchError, UnknownJobError
from domain.job import Job
from domain.job_name import JobName, job_name_id

Clock = Callable[[], datetime]
# Given a command's response, the aggregates that remember it for an idempotent retry.
Remember = Callable[[Any], list[IdempotentResponse]]

DEFAULT_LEASE_SECONDS = 86400.0
_MAX_REMEMBERED_JOBS = 100_000


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
    snapshotting_intervals = {Job: 200}
    env = {
        "AGGREGATE_CACHE_MAXSIZE": "5000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "y",
    }

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        clock: Clock = utc_now,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        retry_policy: RetryPolicy | None = None,
        conflict_lanes: ConflictLanes | None = None,
        observer: Observer = ignore,
    ) -> None:
        super().__init__(env)
        self.observer = observer
        self.conflict_lanes = conflict_lanes
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.retry_policy = retry_policy or RetryPolicy()
        self.conflict_stats = ConflictStats(observer)
        self._job_locks = _JobLocks()
        # Job id -> its Job aggregate's UUID as last resolved: spares reading the
        # JobName stream on every command (a hint, checked on each use).
        self._job_uuids: dict[str, UUID] = {}

    # -- commands --------------------------------------------------------------------

    def register_job(
        self, spec: Mapping[str, Any], request: RequestKey | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """Register a job; returns (created, spec with job_id). Same id, same spec: not created."""
        spec = dict(spec)
        if spec.get("job_id") is None:
            spec["job_id"] = self._fresh_job_id(spec["job_id_prefix"])
        created, registered = self._run(spec["job_id"], lambda remember: self._register(spec, remember), request)
        return bool(created), dict(registered)

    def _register(self, spec: dict[str, Any], remember: Remember) -> tuple[bool, dict[str, Any]]:
        now = self.clock()
        job_id = spec["job_id"]
        name = self._job_name(job_id)
        if name is not None and name.current is not None:
            existing = self.repository.get(UUID(name.current))
            if existing.spec != spec:
                raise SpecMismatchError(
                    f"Job {job_id} is already registered with a different specification. "
                    "Use a new job_id for a different configuration."
                )
            self._save_changes(*remember([False, existing.spec]))
            return False, dict(existing.spec)
        seed = spec["mab_seed"] if spec.get("mab_seed") is not None else secrets.randbits(63)
        job = Job.register(uuid4(), job_id, spec, seed, now)
        if name is None:
            name = JobName.claim(job_id, str(job.id), now)
        else:
            name.reclaim(str(job.id), now)
        self.save(name, job, *remember([True, job.spec]))
        return True, dict(job.spec)

    def _fresh_job_id(self, prefix: str) -> str:
        while True:
            candidate = f"{prefix}-{secrets.token_hex(4)}"
            if self._job_name(candidate) is None:
                return candidate

    def predict(self, job_id: str, request: RequestKey | None = None) -> dict[str, Any]:
        """Dispatch a new trial and say which batch size it trains with."""

        def command(remember: Remember) -> dict[str, Any]:
            job = self.live_job(job_id)
            now = self.clock()
            job.expire_stale_trials(now, self.lease_seconds)
            trial = job.dispatch_trial(now)
            answer = {"job_id": job_id, "batch_size": trial.batch_size, "trial_number": trial.number}
            self._save_changes(job, *remember(answer))
            return answer

        return self._run(job_id, command, request)

    def report(
        self,
        job_id: str,
        trial_number: int,
        batch_size: int,
        time: float,
        energy: float,
        metric: float,
        current_epoch: int,
        request: RequestKey | None = None,
    ) -> dict[str, Any]:
        """Record an epoch's cumulative time, energy and metric; say whether to stop."""

        def command(remember: Remember) -> dict[str, Any]:
            job = self.live_job(job_id)
            now = self.clock()
            job.expire_stale_trials(now, self.lease_seconds)
            verdict = job.report(trial_number, batch_size, time, energy, metric, current_epoch, now)
            answer = {"stop_train": verdict.stop_train, "converged": verdict.converged, "message": verdict.message}
            self._save_changes(job, *remember(answer))
            return answer

        return self._run(job_id, command, request)

    def end_trial(
        self, job_id: str, trial_number: int, batch_size: int, request: RequestKey | None = None
    ) -> str | None:
        """The trainer is done with this trial; if it never reported a result it is Failed.

        Returns the trial's status afterwards (None from an answer stored before statuses were).
        """

        def command(remember: Remember) -> str:
            job = self.live_job(job_id)
            now = self.clock()
            job.expire_stale_trials(now, self.lease_seconds)
            job.end_trial(trial_number, batch_size, now)
            status = job.trial_status(trial_number)
            self._save_changes(job, *remember(status))
            return status

        return self._run(job_id, command, request)

    def delete_job(self, job_id: str, request: RequestKey | None = None) -> None:
        """Hide the job from trainers; its history stays readable."""

        def command(remember: Remember) -> None:
            job = self.live_job(job_id)
            name = self._job_name(job_id)
            assert name is not None
            now = self.clock()
            job.delete(now)
            name.release(now)
            self.save(name, job, *remember(None))

        self._run(job_id, command, request)

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Save as eventsourcing does, then tell the observer what was committed and how fast."""
        started = perf_counter()
        recordings = super().save(*objs, **kwargs)
        self.observer(EventsSaved([recording.domain_event for recording in recordings], perf_counter() - started))
        return recordings

    def _save_changes(self, *aggregates: Aggregate) -> None:
        """Save, unless nothing changed (an answer from state alone needs no write transaction)."""
        if any(aggregate.pending_events for aggregate in aggregates):
            self.save(*aggregates)

    def _run(self, job_id: str, command: Callable[[Remember], Any], request: RequestKey | None = None) -> Any:
        with self._job_locks(job_id):
            return run_with_retries(
                lambda: self._attempt(command, request),
                self.retry_policy,
                self.conflict_stats,
                take_turns=self._take_turns(job_id),
            )

    def _take_turns(self, job_id: str) -> Callable[[bool], ContextManager[None]]:
        lanes = self.conflict_lanes
        if lanes is None:
            return lambda lost_race: nullcontext()
        return lambda lost_race: lanes.take_turns(job_id, lost_race)

    def close(self) -> None:
        if self.conflict_lanes is not None:
            self.conflict_lanes.close()
        super().close()

    def _attempt(self, command: Callable[[Remember], Any], request: RequestKey | None) -> Any:
        """One try: a repeated request gets its stored answer, a first one stores it with its events."""
        if request is None:
            return command(lambda response: [])
        try:
            return self.repository.get(request.record_id).answer(request)
        except AggregateNotFoundError:
            return command(lambda response: [IdempotentResponse.record(request, response, self.clock())])

    # -- loading -----------------------------------------------------------------------

    def _job_name(self, job_id: str) -> JobName | None:
        try:
            return self.repository.get(job_name_id(job_id))
        except AggregateNotFoundError:
            return None

    def live_job(self, job_id: str) -> Job:
        """The job currently registered under this id; UnknownJobError if none."""
        remembered = self._job_uuids.get(job_id)
        if remembered is not None:
            # Loading fast-forwards from the store, so a deletion by any process shows
            # here; only then is the name (which a new registration moves) read again.
            job = self.repository.get(remembered)
            if not job.deleted:
                return job
        name = self._job_name(job_id)
        if name is None or name.current is None:
            raise UnknownJobError(f"Unknown job({job_id}). Please register the job first")
        if len(self._job_uuids) >= _MAX_REMEMBERED_JOBS:
            self._job_uuids.clear()
        self._job_uuids[job_id] = UUID(name.current)
        return self.repository.get(UUID(name.current))
