"""Scripted job histories for the audit, replay and reanalysis tests."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from application.service import BatchSizeOptimizer
from domain.reporting import EpochReport


@dataclass
class ManualClock:
    now: datetime = field(default_factory=lambda: datetime(2024, 5, 1, tzinfo=timezone.utc))

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# (batch size, epoch, trial number) -> cumulative seconds, joules, and the metric after the epoch.
Workload = Callable[[int, int, int], tuple[float, float, float]]


def linear_workload(batch_size: int, epoch: int, trial_number: int, smallest_converging: int = 16) -> tuple[float, float, float]:
    """Sizes below ``smallest_converging`` never reach 0.5; runs vary a little with the trial."""
    jitter = 1 + ((trial_number * 7919) % 11) / 100
    seconds = (10.0 + batch_size / 4) * jitter
    joules = 100.0 + 3 * batch_size
    metric = 0.0 if batch_size < smallest_converging else min(1.0, epoch * batch_size / 64)
    return seconds * epoch, joules * epoch, metric


def train(
    app: BatchSizeOptimizer, job_id: str, workload: Workload = linear_workload, max_epochs: int = 10
) -> dict[str, Any]:
    """One recurrence: predict, then report every epoch until told to stop."""
    trial = app.predict(job_id)
    for epoch in range(1, max_epochs + 1):
        time, energy, metric = workload(trial["batch_size"], epoch, trial["trial_number"])
        answer = app.report(job_id, EpochReport(trial["trial_number"], trial["batch_size"], time, energy, metric, epoch))
        if answer["stop_train"]:
            return {**trial, **answer, "epoch": epoch}
    return {**trial, "stop_train": False}
