"""The list of every job ever registered, read from the application's own event log.

No second table is written, so the list is consistent with the events on every
store (memory, SQLite, PostgreSQL) by construction. Each process keeps its
entries in memory and, on every read, asks the log only for what was appended
since its last read: a listing costs one indexed range query over the new
events, not a scan of the whole history. Both stores assign notification ids in
commit order (PostgreSQL under a table lock, SQLite by its single writer), so
nothing committed below the last position read can appear later.

It follows stage changes and deletions the same way, so ``/metrics`` can count
jobs by stage from the log without loading a single job.
"""

import bisect
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from domain.enums import Stage
from domain.job import Job
from domain.spec import LSTS

if TYPE_CHECKING:
    from application.service import BatchSizeOptimizer

REGISTERED_TOPIC = Job.Registered.TOPIC
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

    def page(self, prefix: str, after: int, limit: int) -> tuple[list[CatalogEntry], bool]:
        """Registrations after the cursor ``after`` whose job id starts with ``prefix``.

        Returns up to ``limit`` entries in registration order and whether more match.
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

    def count_by_stage(self) -> dict[str, int]:
        """How many jobs are in each stage now (deleted jobs counted apart)."""
        self._catch_up()
        with self._lock:
            counts = dict.fromkeys([*Stage, DELETED], 0)
            for stage in self._stages.values():
                counts[stage] += 1
            return counts

    def _catch_up(self) -> None:
        with self._lock:
            recorder = self._app.recorder
            newest = recorder.max_notification_id() or 0
            while self._read_up_to < newest:
                notifications = recorder.select_notifications(
                    self._read_up_to,
                    _PAGE,
                    stop=newest,
                    topics=_FOLLOWED_TOPICS,
                    inclusive_of_start=False,
                )
                for notification in notifications:
                    self._follow(notification.id, self._app.mapper.to_domain_event(notification))
                if len(notifications) < _PAGE:
                    self._read_up_to = newest
                else:
                    self._read_up_to = notifications[-1].id

    def _follow(self, position: int, event: object) -> None:
        if isinstance(event, Job.Registered):
            self._entries.append(CatalogEntry(position, event.job_id, event.originator_id, event.timestamp))
            self._positions.append(position)
            self._stages[event.originator_id] = Stage.LOCAL_SEARCH if event.spec.policy == LSTS else Stage.PRUNING
        elif isinstance(event, Job.StageAdvancedToMAB):
            self._stages[event.originator_id] = Stage.BANDIT
        elif isinstance(event, Job.PolicyObserved) and event.observation.get("enter_bandit"):
            self._stages[event.originator_id] = Stage.BANDIT
        elif isinstance(event, Job.Deleted):
            self._stages[event.originator_id] = DELETED
