"""The answers a user asks of a job first: which batch size to use now, whether the job has
settled on it, and what the optimizer saved (or spent exploring) against running every
recurrence at the default batch size. Also the same, summed over the fleet.

A summary is computed from the job's trial views (application/trial_views.py: kept as a read
model, so a long job's summary reads fast after a restart too) and its state view; the
recommendation itself is the policy's (``Policy.describe``). How each figure is estimated is
stated in docs/policies.md ("Summary: which batch size, has it settled, what it saved").
"""

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from domain.enums import Stage, TrialStatus

# Settled: in the bandit stage, with the last SETTLED_AFTER trials all at the recommended size.
SETTLED_AFTER = 10
MEASURES = ("energy", "time", "cost")


@dataclass
class _Totals:
    trials: int = 0
    energy: float = 0.0
    time: float = 0.0
    cost: float = 0.0

    def add(self, trial: Mapping[str, Any]) -> None:
        """A trial's consumption as last reported (nothing, for one that never reported)."""
        self.trials += 1
        for name in MEASURES:
            setattr(self, name, getattr(self, name) + (trial[name] or 0.0))

    def mean(self) -> dict[str, float]:
        return {name: getattr(self, name) / self.trials for name in MEASURES}


@dataclass
class _Consumption:
    """What a job's trials consumed, by batch size: every trial (running ones so far), and
    the converged ones."""

    trial_sizes: list[int] = field(default_factory=list)  # in trial order
    consumed: dict[int, _Totals] = field(default_factory=dict)
    converged: dict[int, _Totals] = field(default_factory=dict)

    @classmethod
    def of(cls, trials: Mapping[int, Mapping[str, Any]]) -> "_Consumption":
        consumption = cls()
        for number in sorted(trials):
            trial = trials[number]
            size = trial["batch_size"]
            consumption.trial_sizes.append(size)
            consumption.consumed.setdefault(size, _Totals()).add(trial)
            if trial["status"] == TrialStatus.SUCCEEDED and trial["converged"]:
                consumption.converged.setdefault(size, _Totals()).add(trial)
        return consumption

    def actual(self) -> dict[str, float]:
        return {name: sum(getattr(totals, name) for totals in self.consumed.values()) for name in MEASURES}


def job_summary(state: dict[str, Any], trials: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """The summary of a job from its state view and its trial views (of the same version)."""
    fold = _Consumption.of(trials)
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


def _settled(stage: str, size: int, trial_sizes: list[int]) -> dict[str, Any]:
    run = 0  # trials at the recommended size, counted back from the latest
    for trial_size in reversed(trial_sizes):
        if trial_size != size:
            break
        run += 1
    settled = stage == Stage.BANDIT and run >= SETTLED_AFTER
    return {"settled": settled, "settled_since_trial": len(trial_sizes) - run + 1 if settled else None}


def _savings(default_size: int, recommended: int, fold: _Consumption) -> dict[str, Any]:
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


def _exploration_cost(fold: _Consumption, recommended: int, runs: _Totals | None, name: str) -> float | None:
    """What the trials not on the recommended size consumed above as many of its converged runs."""
    if runs is None:
        return None
    elsewhere = [totals for size, totals in fold.consumed.items() if size != recommended]
    spent = sum(getattr(totals, name) for totals in elsewhere)
    return spent - sum(totals.trials for totals in elsewhere) * runs.mean()[name]


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
