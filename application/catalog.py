"""The list of every job ever registered, read from the application's own event log.

No second table is written, so the list is consistent with the events on every
store (memory, SQLite, PostgreSQL) by construction. Each process keeps its
entries in memory and, on every read, asks the log only for what was appended
since its last read: a listing costs one indexed range query over the new
events, not a scan of the whole history. Both stores assign notification ids in
commit order (PostgreSQL under a table lock, SQLite by its single writer), so
nothing committed below the last position read can appear later.

It follows stage changes and deletions the same way, so ``/metrics`` can count
jobs by stage from the log without loading a single job; and, for ``/metrics``
alone (listings never pay for it), each job's final reports, to count the jobs
whose recent trials were stopped by the cost bound in a row.
"""

import bisect
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable
from uuid import UUID

from domain.bounds import bound_may_lag
from domain.enums import Stage
from domain.job import Job
from domain.policies import policy_named

if TYPE_CHECKING:
    from application.service import BatchSizeOptimizer

REGISTERED_TOPIC = Job.Registered.TOPIC
REPORTED_TOPIC = Job.TrialReported.TOPIC
# Besides registrations, the catalog follows what moves a job between stages.
_FOLLOWED_TOPICS = [REGISTERED_TOPIC, Job.StageAdvancedToMAB.TOPIC, Job.PolicyObserved.TOPIC, Job.Deleted.TOPIC]
DELETED = "deleted"
_PAGE = 1000


@dataclass(frozen=True)
class CatalogEntry:
    position: int  # notification id of the registration: the paging cursor
    job_id: str
    job_uuid: UUID
    registered_at: datetime


class JobCatalog:
    def __init__(self, app: "BatchSizeOptimizer") -> None:
        self._app = app
        self._entries: list[CatalogEntry] = []
        self._positions: list[int] = []
        self._stages: dict[UUID, str] = {}  # a Stage, or DELETED
        self._read_up_to = 0
        self._lock = threading.Lock()
        self._stopped_in_a_row: dict[UUID, int] = {}  # jobs with any, as of their latest final report
        self._reports_read_up_to = 0
        self._reports_lock = threading.Lock()

    def page(self, prefix: str, after: int, limit: int | None) -> tuple[list[CatalogEntry], bool]:
        """Registrations after the cursor ``after`` whose job id starts with ``prefix``.

        Returns up to ``limit`` entries (None: all) in registration order and whether more match.
        """
        self._catch_up()
        with self._lock:
            start = bisect.bisect_right(self._positions, after)
            matches: list[CatalogEntry] = []
            for entry in self._entries[start:]:
                if entry.job_id.startswith(prefix):
                    if len(matches) == limit:
                        return matches, True
                    matches.append(entry)
            return matches, False

    def is_deleted(self, job_uuid: UUID) -> bool:
        with self._lock:
            return self._stages.get(job_uuid) == DELETED

    def count_by_stage(self) -> dict[str, int]:
        """How many jobs are in each stage now (deleted jobs counted apart)."""
        self._catch_up()
        with self._lock:
            counts = dict.fromkeys([*Stage, DELETED], 0)
            for stage in self._stages.values():
                counts[stage] += 1
            return counts

    def count_stopped_in_a_row(self) -> int:
        """Live jobs whose trials stopped by the bound in a row suggest it has fallen behind (bound_may_lag)."""
        self._catch_up()
        with self._reports_lock:
            self._reports_read_up_to = self._read(self._reports_read_up_to, [REPORTED_TOPIC], self._follow_report)
            with self._lock:
                return sum(
                    1
                    for job_uuid, count in self._stopped_in_a_row.items()
                    if bound_may_lag(count) and self._stages.get(job_uuid) != DELETED
                )

    def _catch_up(self) -> None:
        with self._lock:
            self._read_up_to = self._read(self._read_up_to, _FOLLOWED_TOPICS, self._follow)

    def _read(self, done: int, topics: list[str], follow: Callable[[int, Any], None]) -> int:
        """Follow the events of ``topics`` stored after position ``done``; the new position."""
        recorder = self._app.recorder
        newest = recorder.max_notification_id() or 0
        while done < newest:
            notifications = recorder.select_notifications(
                done, _PAGE, stop=newest, topics=topics, inclusive_of_start=False
            )
            for notification in notifications:
                follow(notification.id, self._app.mapper.to_domain_event(notification))
            done = newest if len(notifications) < _PAGE else notifications[-1].id
        return done

    def _follow_report(self, position: int, event: Any) -> None:
        if event.stopped_in_a_row is not None:  # events older than the count leave it as it was
            self._stopped_in_a_row[event.originator_id] = event.stopped_in_a_row

    def _follow(self, position: int, event: object) -> None:
        if isinstance(event, Job.Registered):
            self._entries.append(CatalogEntry(position, event.job_id, event.originator_id, event.timestamp))
            self._positions.append(position)
            policy = policy_named(event.spec.policy)
            self._stages[event.originator_id] = policy.stage(policy.initial_state(event.spec))
        elif isinstance(event, Job.StageAdvancedToMAB):
            self._stages[event.originator_id] = Stage.BANDIT
        elif isinstance(event, Job.PolicyObserved) and event.observation.get("enter_bandit"):
            self._stages[event.originator_id] = Stage.BANDIT
        elif isinstance(event, Job.Deleted):
            self._stages[event.originator_id] = DELETED
