"""The answers a user asks of a job first: which batch size to use now, whether the job has
settled on it, and what the optimizer saved (or spent exploring) against running every
recurrence at the default batch size. Also the same, summed over the fleet.

``SummaryFold`` folds a job's events into per-batch-size totals, incrementally (like the
audit's trial fold, but a few numbers per size and one per trial), so that a summary of a
long job, or of every job, costs little once its events have been read. The recommendation
itself is the policy's (``Policy.describe``); how each figure is estimated is stated in
the README ("Summary: which batch size, what it saved").
"""

from array import array
from dataclasses import dataclass, field
from typing import Any, Iterable

from eventsourcing.domain import DomainEventProtocol

from domain.enums import Stage
from domain.job import Job

# Settled: in the bandit stage, with the last SETTLED_AFTER trials all at the recommended size.
SETTLED_AFTER = 10
MEASURES = ("energy", "time", "cost")


@dataclass
class _Totals:
    trials: int = 0
    energy: float = 0.0
    time: float = 0.0
    cost: float = 0.0

    def add(self, measured: dict[str, float]) -> None:
        self.trials += 1
        for name in MEASURES:
            setattr(self, name, getattr(self, name) + measured[name])

    def mean(self) -> dict[str, float]:
        return {name: getattr(self, name) / self.trials for name in MEASURES}


@dataclass
class SummaryFold:
    """What a job's trials consumed, by batch size, as its events tell it."""

    version: int = 0
    trial_sizes: array = field(default_factory=lambda: array("q"))  # by trial number - 1
    consumed: dict[int, _Totals] = field(default_factory=dict)  # every finished trial, by size
    converged: dict[int, _Totals] = field(default_factory=dict)  # converged trials, by size
    open_trials: dict[int, dict[str, float]] = field(default_factory=dict)  # last measured so far

    def apply(self, events: Iterable[DomainEventProtocol[Any]]) -> None:
        for event in events:
            self._apply(event)
            self.version = event.originator_version

    def _apply(self, event: DomainEventProtocol[Any]) -> None:
        if isinstance(event, Job.TrialDispatched):
            self.trial_sizes.append(event.batch_size)
            self.open_trials[event.number] = {"energy": 0.0, "time": 0.0, "cost": 0.0}
        elif isinstance(event, Job.TrialProgressReported):
            self.open_trials[event.number] = _measured(event)
        elif isinstance(event, Job.TrialReported):
            self.open_trials.pop(event.number, None)
            self.consumed.setdefault(event.batch_size, _Totals()).add(_measured(event))
            if event.converged:
                self.converged.setdefault(event.batch_size, _Totals()).add(_measured(event))
        elif isinstance(event, (Job.TrialEnded, Job.TrialExpired)):
            measured = self.open_trials.pop(event.number)
            self.consumed.setdefault(self.trial_sizes[event.number - 1], _Totals()).add(measured)

    def actual(self) -> dict[str, float]:
        """What every trial so far consumed, the ones still running included."""
        totals = {name: 0.0 for name in MEASURES}
        for measured in [*(vars(t) for t in self.consumed.values()), *self.open_trials.values()]:
            for name in MEASURES:
                totals[name] += measured[name]
        return totals


def _measured(event: Any) -> dict[str, float]:
    return {"energy": event.energy, "time": event.time, "cost": event.cost}


def job_summary(state: dict[str, Any], fold: SummaryFold) -> dict[str, Any]:
    """The summary of a job from its state view and its summary fold (same version)."""
    recommendation = state["recommendation"]
    size = recommendation["batch_size"]
    return {
        "job_id": state["job_id"],
        "job_uuid": state["job_uuid"],
        "version": state["version"],
        "policy": state["policy"],
        "gpu_model": state["spec"]["gpu_model"],
        "default_batch_size": state["spec"]["default_batch_size"],
        "stage": state["stage"],
        "recommended_batch_size": size,
        "recommendation": recommendation,
        **_settled(state["stage"], size, fold.trial_sizes),
        "settled_after_trials": SETTLED_AFTER,
        "savings": _savings(state["spec"]["default_batch_size"], size, fold),
    }


def _settled(stage: str, size: int, trial_sizes: array) -> dict[str, Any]:
    run = 0  # trials at the recommended size, counted back from the latest
    for trial_size in reversed(trial_sizes):
        if trial_size != size:
            break
        run += 1
    settled = stage == Stage.BANDIT and run >= SETTLED_AFTER
    return {"settled": settled, "settled_since_trial": len(trial_sizes) - run + 1 if settled else None}


def _savings(default_size: int, recommended: int, fold: SummaryFold) -> dict[str, Any]:
    actual = fold.actual()
    recurrences = sum(totals.trials for totals in fold.converged.values())
    default_runs = fold.converged.get(default_size)
    recommended_runs = fold.converged.get(recommended)
    savings: dict[str, Any] = {"converged_recurrences": recurrences}
    for name in MEASURES:
        estimate = None if default_runs is None else recurrences * default_runs.mean()[name]
        saved = None if estimate is None else estimate - actual[name]
        savings[name] = {
            "actual": actual[name],
            "default_estimate": estimate,
            "saved": saved,
            "fraction": None if saved is None or estimate == 0 else saved / estimate,
            "exploration_cost": _exploration_cost(fold, recommended, recommended_runs, name),
        }
    savings["default_estimate_missing"] = (
        None if default_runs is not None else f"the default batch size ({default_size}) never converged: nothing prices it"
    )
    savings["exploration_cost_missing"] = (
        None if recommended_runs is not None else f"the recommended batch size ({recommended}) never converged: nothing prices it"
    )
    return savings


def _exploration_cost(fold: SummaryFold, recommended: int, runs: _Totals | None, name: str) -> float | None:
    """What the trials not on the recommended size consumed above as many of its converged runs."""
    if runs is None:
        return None
    elsewhere = [totals for size, totals in fold.consumed.items() if size != recommended]
    still_running = [fold.open_trials[number] for number in fold.open_trials if fold.trial_sizes[number - 1] != recommended]
    spent = sum(getattr(totals, name) for totals in elsewhere) + sum(measured[name] for measured in still_running)
    count = sum(totals.trials for totals in elsewhere) + len(still_running)
    return spent - count * runs.mean()[name]


def fleet_summary(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Savings summed over jobs, overall and per GPU model; jobs whose default batch size never
    converged count in ``actual`` only, and are counted apart."""
    overall = _FleetTotals()
    by_gpu: dict[str, _FleetTotals] = {}
    for summary in summaries:
        overall.add(summary)
        by_gpu.setdefault(summary["gpu_model"], _FleetTotals()).add(summary)
    return {"overall": overall.view(), "by_gpu_model": {gpu: totals.view() for gpu, totals in sorted(by_gpu.items())}}


@dataclass
class _FleetTotals:
    jobs: int = 0
    settled: int = 0
    without_estimate: int = 0
    actual: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MEASURES, 0.0))
    priced_actual: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MEASURES, 0.0))
    default_estimate: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MEASURES, 0.0))

    def add(self, summary: dict[str, Any]) -> None:
        self.jobs += 1
        self.settled += summary["settled"]
        savings = summary["savings"]
        priced = savings["default_estimate_missing"] is None
        self.without_estimate += not priced
        for name in MEASURES:
            self.actual[name] += savings[name]["actual"]
            if priced:
                self.priced_actual[name] += savings[name]["actual"]
                self.default_estimate[name] += savings[name]["default_estimate"]

    def view(self) -> dict[str, Any]:
        view: dict[str, Any] = {"jobs": self.jobs, "settled_jobs": self.settled, "jobs_without_default_estimate": self.without_estimate}
        for name in MEASURES:
            estimate = self.default_estimate[name]
            saved = estimate - self.priced_actual[name]
            view[name] = {
                "actual": self.actual[name],
                "default_estimate": estimate,
                "saved": saved,
                "fraction": saved / estimate if estimate else None,
            }
        return view
