"""Each job's trial views, kept in memory and brought up to date by reading only new events.

The trial list and one trial's detail are folds over the job's whole stream
(``application.audit.trial_views``). Folding a 10,000-trial job from scratch
reads and decodes some 20,000 events, over a second; the dashboard asks for the
same job again and again. So each process keeps the fold of the jobs read
lately, with the version it reflects, and on every read folds in only the
events appended since (one indexed range read, usually empty). Past versions
(time travel) are folded from scratch and not kept. The cache is bounded by the
number of trials it holds, least recently read jobs leaving first. Each worker
process has its own; all of them read the one event store, so they agree.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from application.service import BatchSizeOptimizer

TrialViews = dict[int, dict[str, Any]]
Fold = Callable[[Iterable[DomainEventProtocol[Any]], TrialViews], TrialViews]
DEFAULT_CAPACITY_TRIALS = 50_000


@dataclass
class _Folded:
    version: int = 0
    views: TrialViews = field(default_factory=dict)


class TrialHistory:
    def __init__(self, app: BatchSizeOptimizer, fold: Fold, capacity_trials: int = DEFAULT_CAPACITY_TRIALS) -> None:
        self.app = app
        self.fold = fold
        self.capacity_trials = capacity_trials
        self._jobs: OrderedDict[UUID, _Folded] = OrderedDict()
        self._lock = threading.Lock()

    def views(self, job_uuid: UUID, version: int | None, read: Callable[[TrialViews], Any]) -> Any:
        """``read`` applied to the job's trial views, latest or right after ``version``.

        ``read`` runs under the cache's lock and must not keep the views it is given.
        """
        with self._lock:
            folded = self._jobs.pop(job_uuid, None) or _Folded()
            if version is not None and version < folded.version:  # the past: folded afresh, not kept
                self._jobs[job_uuid] = folded
                return read(self.fold(self.app.repository.event_store.get(job_uuid, lte=version), {}))
            new_events = list(self.app.repository.event_store.get(job_uuid, gt=folded.version, lte=version))
            if new_events:
                self.fold(new_events, folded.views)
                folded.version = new_events[-1].originator_version
            self._jobs[job_uuid] = folded
            self._evict()
            return read(folded.views)

    def _evict(self) -> None:
        held = sum(len(folded.views) for folded in self._jobs.values())
        while held > self.capacity_trials and len(self._jobs) > 1:
            _, oldest = self._jobs.popitem(last=False)
            held -= len(oldest.views)
