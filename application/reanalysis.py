"""Counterfactual replay: what the policy would have done under other knobs.

The recorded history is replayed, in its original order, into a throw-away Job
aggregate held in memory (nothing is ever saved): each recorded dispatch asks the
counterfactual job for a batch size, each recorded epoch report feeds it
telemetry, each recorded end or expiry ends its trial. The decisions are made by
the Job aggregate itself, so the policy has one implementation.

Where telemetry comes from, per counterfactual trial:
- ``recorded``: same batch size as the actual trial, its own per-epoch reports;
- ``resampled``: another size that was run, the epochs of one of that size's
  finished trials, drawn with a seeded generator;
- ``no_data``: a size never run; nothing is invented, the trial is abandoned
  when the actual one finished, as if the trainer had given it up.
When the recorded epochs run out before the counterfactual stop rule stops, the
outcome is unknown beyond the last recorded epoch; that trial is abandoned too,
so no invented cost ever reaches the minimum cost or the bandit.
"""

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence
from uuid import uuid4

from eventsourcing.domain import DomainEventProtocol

from domain.cost import energy_time_cost
from domain.enums import StopReason, TrialKind, TrialStatus
from domain.errors import InvalidReportError, NoConvergedBatchSizeError
from domain.job import Job
from domain.reporting import EpochReport
from domain.spec import SpecLimits

RECORDED = "recorded"
RESAMPLED = "resampled"
NO_DATA = "no_data"

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Epoch:
    epoch: int
    time: float
    energy: float
    metric: float


@dataclass
class ActualTrial:
    number: int
    batch_size: int
    kind: TrialKind
    status: TrialStatus = TrialStatus.DISPATCHED
    epochs: list[Epoch] = field(default_factory=list)
    cost: float | None = None
    converged: bool | None = None
    stop_reason: StopReason | None = None


@dataclass
class CounterfactualTrial:
    number: int
    batch_size: int
    kind: TrialKind
    data: str
    source_trial: int | None
    source: list[Epoch]
    fed: int = 0
    outcome: str = "in_flight"  # finished, abandoned, unknown, no_data, in_flight
    last: Epoch | None = None
    cost: float | None = None
    converged: bool | None = None
    stop_reason: StopReason | None = None

    @property
    def running(self) -> bool:
        return self.outcome == "in_flight"


class _Replay:
    """Drives the counterfactual job through the recorded history, event by event."""

    def __init__(
        self,
        registered: Job.Registered,
        overrides: Mapping[str, Any],
        resample_seed: int,
        finished_runs: dict[int, tuple[int, list[Epoch]]],
        limits: SpecLimits,
    ) -> None:
        self.actual_spec = registered.spec
        seed = overrides["mab_seed"] if overrides.get("mab_seed") is not None else registered.seed
        self.spec = registered.spec.with_knobs({**overrides, "mab_seed": seed}, limits)
        self.job = Job.register(uuid4(), self.spec, seed, registered.timestamp)
        self.job.collect_events()
        self.resampler = random.Random(resample_seed)
        self.finished_runs = finished_runs
        self.actual: dict[int, ActualTrial] = {}
        self.counterfactual: dict[int, CounterfactualTrial] = {}
        self.halted: str | None = None

    def apply(self, event: DomainEventProtocol[Any]) -> None:
        if isinstance(event, Job.TrialDispatched):
            self.actual[event.number] = ActualTrial(event.number, event.batch_size, event.kind)
            self._dispatch(event)
        elif isinstance(event, Job.TrialProgressReported):
            actual = self.actual[event.number]
            actual.epochs.append(Epoch(event.epoch, event.time, event.energy, event.metric))
            actual.cost = event.cost
            self._feed(event, final=False)
        elif isinstance(event, Job.TrialReported):
            actual = self.actual[event.number]
            actual.epochs.append(Epoch(event.epoch, event.time, event.energy, event.metric))
            actual.status, actual.cost = TrialStatus.SUCCEEDED, event.cost
            actual.converged, actual.stop_reason = event.converged, event.reason
            self._feed(event, final=True)
        elif isinstance(event, (Job.TrialEnded, Job.TrialExpired)):
            actual = self.actual[event.number]
            actual.status = TrialStatus.FAILED
            actual.stop_reason = StopReason.ENDED if isinstance(event, Job.TrialEnded) else StopReason.EXPIRED
            self._abandon(event.number, "abandoned", event, actual.stop_reason)

    def _dispatch(self, event: Job.TrialDispatched) -> None:
        if self.halted is not None:
            return
        try:
            trial = self.job.dispatch_trial(event.timestamp)
        except NoConvergedBatchSizeError as error:
            self.halted = str(error)
            return
        self.job.collect_events()
        data, source_trial, source = self._telemetry_for(event.number, trial.batch_size)
        self.counterfactual[trial.number] = CounterfactualTrial(
            trial.number, trial.batch_size, trial.kind, data, source_trial, source
        )

    def _telemetry_for(self, number: int, batch_size: int) -> tuple[str, int | None, list[Epoch]]:
        actual = self.actual[number]
        if batch_size == actual.batch_size:
            # The list grows as the actual trial reports, so later epochs arrive in time.
            return RECORDED, number, actual.epochs
        candidates = sorted(number for number, (size, _) in self.finished_runs.items() if size == batch_size)
        if not candidates:
            return NO_DATA, None, []
        chosen = self.resampler.choice(candidates)
        return RESAMPLED, chosen, self.finished_runs[chosen][1]

    def _feed(self, event: Any, final: bool) -> None:
        trial = self.counterfactual.get(event.number)
        if trial is None or not trial.running:
            return
        self._report_next(trial, event)
        while final and trial.running and trial.fed < len(trial.source):
            self._report_next(trial, event)
        if final and trial.running:
            self._abandon(trial.number, NO_DATA if trial.data == NO_DATA else "unknown", event, None)

    def _report_next(self, trial: CounterfactualTrial, event: Any) -> None:
        if trial.fed >= len(trial.source):
            return
        epoch = trial.source[trial.fed]
        trial.fed += 1
        trial.last = epoch
        try:
            report = EpochReport(trial.number, trial.batch_size, epoch.time, epoch.energy, epoch.metric, epoch.epoch)
        except InvalidReportError:  # stored before reports were bounded: its outcome is unknown
            self._abandon(trial.number, "unknown", event, None)
            return
        answer = self.job.report(report, event.timestamp)
        for recorded in self.job.collect_events():
            trial.cost = getattr(recorded, "cost", trial.cost)
            if isinstance(recorded, Job.TrialReported):
                trial.converged, trial.stop_reason = recorded.converged, recorded.reason
        if answer.stop_train:
            trial.outcome = "finished"

    def _abandon(self, number: int, outcome: str, event: Any, stop_reason: str | None) -> None:
        trial = self.counterfactual.get(number)
        if trial is None or not trial.running:
            return
        self.job.end_trial(number, trial.batch_size, event.timestamp)
        self.job.collect_events()
        trial.outcome, trial.stop_reason = outcome, stop_reason


def reanalyze(
    events: Sequence[DomainEventProtocol[Any]],
    overrides: Mapping[str, Any],
    resample_seed: int = 0,
    progress: Progress | None = None,
    limits: SpecLimits = SpecLimits(),
) -> dict[str, Any]:
    """Replay a job's events under ``overrides`` (knobs of domain.spec.KNOBS; InvalidSpecError
    if the job under them is impossible); returns the per-trial diff and totals."""
    registered = events[0]
    assert isinstance(registered, Job.Registered)
    replay = _Replay(registered, overrides, resample_seed, _finished_runs(events), limits)
    for done, event in enumerate(events[1:], start=2):
        if isinstance(event, Job.Deleted):
            break
        replay.apply(event)
        if progress is not None and (done % 500 == 0 or done == len(events)):
            progress(done, len(events))
    pricing = _Pricing(replay.spec.eta_knob, replay.actual_spec.max_power)
    trials = [_trial_diff(replay.actual[n], replay.counterfactual.get(n), pricing) for n in sorted(replay.actual)]
    return {
        "job_id": registered.job_id,
        "job_uuid": str(registered.originator_id),
        "knobs": {
            "actual": replay.actual_spec.knobs() | {"mab_seed": registered.seed},
            "counterfactual": replay.spec.knobs(),
        },
        "resample_seed": resample_seed,
        "halted": replay.halted,
        "trials": trials,
        "summary": _summary(trials, replay, pricing),
    }


def _finished_runs(events: Sequence[DomainEventProtocol[Any]]) -> dict[int, tuple[int, list[Epoch]]]:
    """Batch size and per-epoch telemetry of every trial that got its final report.

    Resampling draws from the whole recorded history, known before the replay starts.
    """
    runs: dict[int, tuple[int, list[Epoch]]] = {}
    finished: set[int] = set()
    for event in events:
        if isinstance(event, Job.TrialDispatched):
            runs[event.number] = (event.batch_size, [])
        elif isinstance(event, (Job.TrialProgressReported, Job.TrialReported)):
            runs[event.number][1].append(Epoch(event.epoch, event.time, event.energy, event.metric))
            if isinstance(event, Job.TrialReported):
                finished.add(event.number)
    return {number: runs[number] for number in sorted(finished)}


def _epoch_fields(last: Epoch | None) -> dict[str, Any]:
    if last is None:
        return {"epochs": 0, "time": None, "energy": None}
    return {"epochs": last.epoch, "time": last.time, "energy": last.energy}


@dataclass(frozen=True)
class _Pricing:
    """How both sides of a report are priced: the counterfactual's eta_knob and the job's
    max_power. A what-if compares decisions, so the same run must cost the same on either
    side; with the recorded eta on one side a change of eta alone would look like a saving."""

    eta_knob: float
    max_power: float

    def cost(self, energy: float | None, time: float | None) -> float | None:
        return None if energy is None or time is None else energy_time_cost(energy, time, self.eta_knob, self.max_power)


def _trial_diff(actual: ActualTrial, counterfactual: CounterfactualTrial | None, pricing: _Pricing) -> dict[str, Any]:
    spent = _epoch_fields(actual.epochs[-1] if actual.epochs else None)
    actual_view = {
        "batch_size": actual.batch_size,
        "kind": actual.kind,
        "status": actual.status,
        **spent,
        "cost": pricing.cost(spent["energy"], spent["time"]),
        "recorded_cost": actual.cost,
        "converged": actual.converged,
        "stop_reason": actual.stop_reason,
    }
    if counterfactual is None:
        return {"number": actual.number, "actual": actual_view, "counterfactual": None, "changed": ["not_simulated"]}
    cf_view = {
        "batch_size": counterfactual.batch_size,
        "kind": counterfactual.kind,
        "outcome": counterfactual.outcome,
        "data": counterfactual.data,
        "source_trial": counterfactual.source_trial,
        **_epoch_fields(counterfactual.last),
        "cost": counterfactual.cost,
        "converged": counterfactual.converged,
        "stop_reason": counterfactual.stop_reason,
        "unknown_beyond_epoch": counterfactual.last.epoch
        if counterfactual.outcome == "unknown" and counterfactual.last
        else None,
    }
    changed = [
        name
        for name, before, after in (
            ("batch_size", actual.batch_size, counterfactual.batch_size),
            ("epochs", actual_view["epochs"], cf_view["epochs"]),
            ("converged", actual.converged, counterfactual.converged),
            ("stop_reason", actual.stop_reason, counterfactual.stop_reason),
        )
        if before != after
    ]
    return {"number": actual.number, "actual": actual_view, "counterfactual": cf_view, "changed": changed}


def _totals(views: list[dict[str, Any]], pricing: _Pricing) -> dict[str, Any]:
    """What a side's trials consumed, priced as a whole (as each of them is)."""
    spent = [view for view in views if view is not None and view["time"] is not None]
    energy = sum(view["energy"] for view in spent)
    time = sum(view["time"] for view in spent)
    return {
        "trials": len(views),
        "energy": energy,
        "time": time,
        "cost": pricing.cost(energy, time),
        "eta_knob": pricing.eta_knob,
        "max_power": pricing.max_power,
    }


def _summary(trials: list[dict[str, Any]], replay: _Replay, pricing: _Pricing) -> dict[str, Any]:
    actual = _totals([trial["actual"] for trial in trials], pricing)
    simulated = [trial["counterfactual"] for trial in trials if trial["counterfactual"] is not None]
    counterfactual = _totals(simulated, pricing)
    incomplete = {
        "unknown_trials": [t["number"] for t in trials if (t["counterfactual"] or {}).get("outcome") == "unknown"],
        "no_data_trials": [t["number"] for t in trials if (t["counterfactual"] or {}).get("data") == NO_DATA],
        "not_simulated_trials": [t["number"] for t in trials if t["counterfactual"] is None],
        "resampled_trials": [t["number"] for t in trials if (t["counterfactual"] or {}).get("data") == RESAMPLED],
    }
    counterfactual["complete"] = not (
        incomplete["unknown_trials"] or incomplete["no_data_trials"] or incomplete["not_simulated_trials"]
    )
    job = replay.job
    return {
        "actual": actual,
        "counterfactual": {**counterfactual, **incomplete},
        "batch_size_changes": sum("batch_size" in trial["changed"] for trial in trials),
        "decision_changes": sum(bool(trial["changed"]) for trial in trials),
        "counterfactual_end_state": {
            "stage": job.stage,
            "min_cost": job.min_cost,
            "min_cost_batch_size": job.min_cost_batch_size if job.min_cost is not None else None,
            "arms": job.policy.describe(job.policy_state, job)["arms"],
        },
    }
