"""Trace-driven simulation of a recurring training job, as a trainer of the optimizer.

The simulator plays the trainer's side only: it asks the optimizer (the real
application in-process, or a server over HTTP) for a batch size, picks a power
limit, "trains" by sampling one recorded run from the Zeus traces, and reports the
result. Every batch size decision is the optimizer's; the trainer-side choices
(power limit, pre-computed early stop) follow Zeus's own simulator that drives its
server over HTTP, so that the same seeds give the same sequence of runs.
"""

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol
from uuid import uuid4

import numpy as np
import pandas as pd

from application.service import BatchSizeOptimizer
from application.traces import TraceSource, Workload
from domain.cost import energy_time_cost, epoch_cost_at_power
from domain.job import Job
from domain.reporting import EpochReport
from domain.spec import ZEUS, JobSpec

MAX_TRIES_PER_RECURRENCE = 20


class SimulationError(RuntimeError):
    """The simulated job cannot go on (e.g. it never reached the target in 20 tries)."""


class OptimizerClient(Protocol):
    """What a trainer needs from the optimizer, in-process or over HTTP."""

    def register(self, spec: dict[str, Any]) -> str: ...

    def predict(self, job_id: str) -> tuple[int, int]: ...

    def report(self, job_id: str, report: EpochReport) -> dict[str, Any]: ...

    def run_cost_bound(self, job_id: str, trial_number: int) -> float | None: ...


class InProcessClient:
    """The application itself, called directly (no HTTP)."""

    def __init__(self, optimizer: BatchSizeOptimizer) -> None:
        self.optimizer = optimizer

    def register(self, spec: dict[str, Any]) -> str:
        _, registered = self.optimizer.register_job(spec)
        return registered["job_id"]

    def predict(self, job_id: str) -> tuple[int, int]:
        answer = self.optimizer.predict(job_id)
        return answer["batch_size"], answer["trial_number"]

    def report(self, job_id: str, report: EpochReport) -> dict[str, Any]:
        return self.optimizer.report(job_id, report)

    def run_cost_bound(self, job_id: str, trial_number: int) -> float | None:
        return self.optimizer.run_cost_bound(job_id, trial_number)


class AggregateClient:
    """The Job aggregate itself, held in memory with no event store: the same decisions as
    the application's (one policy implementation) at a fraction of the cost, for benchmarks
    that simulate thousands of jobs. The clock is a fixed instant; no trial ever expires."""

    _NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __init__(self) -> None:
        self.job: Job | None = None

    def register(self, spec: dict[str, Any]) -> str:
        fields = {**spec, "job_id": spec.get("job_id") or f"{spec['job_id_prefix']}-1"}
        self.job = Job.register(uuid4(), JobSpec.create(fields), fields["mab_seed"], self._NOW)
        self.job.collect_events()
        return self.job.job_id

    def predict(self, job_id: str) -> tuple[int, int]:
        trial = self._job().dispatch_trial(self._NOW)
        self._job().collect_events()
        return trial.batch_size, trial.number

    def report(self, job_id: str, report: EpochReport) -> dict[str, Any]:
        answer = self._job().report(report, self._NOW)
        self._job().collect_events()
        return {"stop_train": answer.stop_train, "converged": answer.converged, "message": answer.message}

    def run_cost_bound(self, job_id: str, trial_number: int) -> float | None:
        return self._job().run_bound(trial_number)

    def _job(self) -> Job:
        assert self.job is not None, "register the job first"
        return self.job


@dataclass(frozen=True)
class Knobs:
    eta_knob: float = 0.5
    beta_knob: float | None = 2.0
    mab_seed: int | None = 1
    window_size: int = 0
    policy: str = ZEUS


# How recorded runs are drawn. "zeus": one generator for every draw, as Zeus's simulator
# does (so the same seed gives Zeus's sequence). "paired": the k-th run of a batch size at a
# power limit depends only on the seed, whatever was drawn before, so that two policies are
# compared on the same runs.
ZEUS_DRAWS = "zeus"
PAIRED_DRAWS = "paired"


@dataclass(frozen=True)
class Run:
    """One training run: a trial the optimizer dispatched and the trainer reported."""

    recurrence: int
    attempt: int
    trial_number: int
    batch_size: int
    power_limit: int
    epochs: float
    energy: float
    time: float
    cost: float
    reached_target: bool
    profiled_power: bool
    server_converged: bool


@dataclass(frozen=True)
class Recurrence:
    """One recurrence of the job: its runs until one reached the target."""

    number: int
    batch_size: int
    power_limit: int
    epochs: float
    energy: float
    time: float
    cost: float
    converged: bool
    tries: int


@dataclass
class SimulationResult:
    job_id: str
    spec: dict[str, Any]
    workload: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    recurrences: list[Recurrence] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "workload": self.workload,
            "spec": self.spec,
            "selected_batch_sizes": [run.batch_size for run in self.runs],
            "summary": self.summary,
            "recurrences": [asdict(recurrence) for recurrence in self.recurrences],
            "runs": [asdict(run) for run in self.runs],
        }


class WorkloadTrace:
    """The trace rows of one workload, indexed for sampling runs and profiling power."""

    def __init__(self, traces: TraceSource, workload: Workload) -> None:
        self.workload = workload
        self.batch_sizes = traces.batch_sizes(workload)
        self.max_power = traces.max_power
        rows = traces.workload_rows(workload)
        self.power_limits = sorted(int(limit) for limit in rows.power_limit.unique())
        # Row order is kept as the join left it: sampling picks a row by position.
        self._by_size = {int(size): frame for size, frame in rows.groupby("batch_size", sort=False)}
        self._by_size_limit = {
            (int(size), int(limit)): frame
            for (size, limit), frame in rows.groupby(["batch_size", "power_limit"], sort=False)
        }
        self._epoch_costs: dict[tuple[int, float], dict[int, float]] = {}

    def size_rows(self, batch_size: int) -> pd.DataFrame:
        if batch_size not in self._by_size:
            raise SimulationError(
                f"The traces hold no run of batch size {batch_size} at target metric "
                f"{self.workload.target_metric}"
            )
        return self._by_size[batch_size]

    def sample_run(self, batch_size: int, power_limit: int, rng: np.random.Generator) -> pd.Series:
        """One recorded run at these knobs, drawn as ``DataFrame.sample(n=1, random_state=rng)``."""
        return self._by_size_limit[(batch_size, power_limit)].sample(n=1, random_state=rng).iloc[0]

    def run_count(self, batch_size: int, power_limit: int) -> int:
        return len(self._by_size_limit[(batch_size, power_limit)])

    def run_at(self, batch_size: int, power_limit: int, position: int) -> pd.Series:
        """The recorded run at this position among those at these knobs."""
        return self._by_size_limit[(batch_size, power_limit)].iloc[position]

    def epoch_cost_by_power_limit(self, batch_size: int, eta_knob: float) -> dict[int, float]:
        """Cost of one epoch at each power limit, highest limit first (the profiling order)."""
        key = (batch_size, eta_knob)
        if key not in self._epoch_costs:  # the traces never change: work it out once
            self._epoch_costs[key] = self._epoch_cost_by_power_limit(batch_size, eta_knob)
        return self._epoch_costs[key]

    def _epoch_cost_by_power_limit(self, batch_size: int, eta_knob: float) -> dict[int, float]:
        rows = self.size_rows(batch_size)
        highest = rows.power_limit.max()
        means = rows.groupby(["power_limit"], as_index=False).mean(numeric_only=True)
        means["epoch_cost"] = epoch_cost_at_power(means.average_power, means.time_per_epoch, eta_knob, highest)
        means = means.sort_values(by="power_limit", ascending=False)
        return {int(row.power_limit): float(row.epoch_cost) for row in means.itertuples()}

    def best_power_limit(self, batch_size: int, eta_knob: float) -> int:
        """The limit with the cheapest epoch; ties keep the higher limit (profiled first)."""
        best_limit, best_cost = None, math.inf
        for limit, cost in self.epoch_cost_by_power_limit(batch_size, eta_knob).items():
            if cost < best_cost:
                best_limit, best_cost = limit, cost
        assert best_limit is not None
        return best_limit

    def profiling_epoch(self, batch_size: int) -> tuple[float, float]:
        """(energy, time) of a first epoch split evenly across all power limits."""
        rows = self.size_rows(batch_size)
        return float(rows.energy_per_epoch.mean()), float(rows.time_per_epoch.mean())

    def highest_power_limit(self, batch_size: int) -> float:
        return float(self.size_rows(batch_size).power_limit.max())


@dataclass(frozen=True)
class _Outcome:
    epochs: float
    energy: float
    time: float
    reached: bool
    reported_epoch: int


class TraceSimulator:
    """Replays one recurring job against an optimizer, one run at a time."""

    def __init__(
        self,
        trace: WorkloadTrace,
        client: OptimizerClient,
        knobs: Knobs,
        seed: int,
        gpu_model: str,
        draws: str = ZEUS_DRAWS,
    ) -> None:
        self.trace = trace
        self.client = client
        self.knobs = knobs
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.draws = draws
        self._paired: dict[tuple[int, int], np.random.Generator] = {}
        self.gpu_model = gpu_model
        self._power_limit: dict[int, int] = {}

    def job_spec(self) -> dict[str, Any]:
        workload = self.trace.workload
        return {
            "job_id": None,
            "job_id_prefix": "simulate",
            "batch_sizes": self.trace.batch_sizes,
            "default_batch_size": workload.default_batch_size,
            "eta_knob": self.knobs.eta_knob,
            "beta_knob": self.knobs.beta_knob,
            "target_metric": workload.target_metric,
            "higher_is_better_metric": True,
            "max_epochs": workload.max_epochs,
            "num_pruning_rounds": 2,
            "window_size": self.knobs.window_size,
            "mab_prior_mean": 0.0,
            "mab_prior_precision": 0.0,
            "mab_num_explorations": 2,
            "mab_seed": self.knobs.mab_seed,
            "max_power": self.trace.max_power,
            "number_of_gpus": 1,
            "gpu_model": self.gpu_model,
            "policy": self.knobs.policy,
        }

    def run(
        self, recurrences: int, progress: Callable[[int, int], None] | None = None, summarise: bool = True
    ) -> SimulationResult:
        spec = self.job_spec()
        job_id = self.client.register(spec)
        result = SimulationResult(job_id=job_id, spec=spec, workload=asdict(self.trace.workload))
        min_cost = math.inf
        for number in range(1, recurrences + 1):
            runs = self._recur(job_id, number, min_cost)
            result.runs.extend(runs)
            recurrence = _summarise_recurrence(number, runs)
            result.recurrences.append(recurrence)
            min_cost = min(min_cost, recurrence.cost)
            if progress is not None:
                progress(number, recurrences)
        if summarise:
            result.summary = summary_of(result, self.trace, self.knobs.eta_knob)
        return result

    def _recur(self, job_id: str, number: int, min_cost: float) -> list[Run]:
        """Train until a run reaches the target; each retry is a new trial."""
        beta = math.inf if self.knobs.beta_knob is None else self.knobs.beta_knob
        runs: list[Run] = []
        for attempt in range(1, MAX_TRIES_PER_RECURRENCE + 1):
            batch_size, trial_number = self.client.predict(job_id)
            profiled_power = batch_size not in self._power_limit
            if profiled_power:
                self._power_limit[batch_size] = self.trace.best_power_limit(batch_size, self.knobs.eta_knob)
            power_limit = self._power_limit[batch_size]
            outcome = self._train(batch_size, power_limit, self._bound(job_id, trial_number, beta * min_cost), profiled_power)
            cost = energy_time_cost(outcome.energy, outcome.time, self.knobs.eta_knob, self.trace.max_power)
            target = self.trace.workload.target_metric
            metric = target + 1 if outcome.reached else target - 1
            report = EpochReport(trial_number, batch_size, outcome.time, outcome.energy, metric, outcome.reported_epoch)
            answer = self.client.report(job_id, report)
            runs.append(
                Run(number, attempt, trial_number, batch_size, power_limit, outcome.epochs,
                    outcome.energy, outcome.time, cost, outcome.reached, profiled_power,
                    bool(answer["converged"]))
            )
            if outcome.reached:
                return runs
        raise SimulationError(
            f"Recurrence {number} did not reach the target metric in {MAX_TRIES_PER_RECURRENCE} tries"
        )

    def _bound(self, job_id: str, trial_number: int, zeus_bound: float) -> float:
        """The cost the trainer stops the run at. Zeus's simulator bounds a run by beta x the
        cheapest recurrence so far (a trainer-side rule kept to reproduce its sequence); any
        other policy decides the run's bound itself, and the service says what it is."""
        if self.knobs.policy == ZEUS:
            return zeus_bound
        bound = self.client.run_cost_bound(job_id, trial_number)
        return math.inf if bound is None else bound

    def _draw(self, batch_size: int, power_limit: int) -> pd.Series:
        if self.draws == ZEUS_DRAWS:
            return self.trace.sample_run(batch_size, power_limit, self.rng)
        key = (batch_size, power_limit)
        stream = self._paired.setdefault(key, np.random.default_rng([self.seed, batch_size, power_limit]))
        return self.trace.run_at(batch_size, power_limit, int(stream.integers(self.trace.run_count(batch_size, power_limit))))

    def _train(self, batch_size: int, power_limit: int, cost_bound: float, profile_power: bool) -> _Outcome:
        """Sample a recorded run and stop it where the trainer knows it would exceed the bound."""
        max_epochs = self.trace.workload.max_epochs
        path = self._draw(batch_size, power_limit)
        budget: float = max_epochs
        if cost_bound != math.inf:
            # Time is priced at this size's highest power limit, as Zeus's simulator does.
            epoch_cost = energy_time_cost(
                path.energy_per_epoch,
                path.time_per_epoch,
                self.knobs.eta_knob,
                self.trace.highest_power_limit(batch_size),
            )
            budget = min(cost_bound // epoch_cost, max_epochs)
        if budget == 0:
            # Not even one epoch is affordable: it is charged one epoch and reported as failed.
            energy, time = self._consume(path, batch_size, 1, profile_power)
            return _Outcome(1, energy, time, False, max_epochs)
        target_epoch = path.target_epoch
        if not pd.isna(target_epoch) and target_epoch <= budget:
            energy, time = self._consume(path, batch_size, target_epoch, profile_power)
            return _Outcome(float(target_epoch), energy, time, True, int(target_epoch))
        energy, time = self._consume(path, batch_size, budget, profile_power)
        return _Outcome(float(budget), energy, time, False, max_epochs)

    def _consume(self, path: pd.Series, batch_size: int, epochs: float, profile_power: bool) -> tuple[float, float]:
        """Energy and time of ``epochs`` epochs; a profiling first epoch costs the mean over limits."""
        if not profile_power:
            return float(path.energy_per_epoch * epochs), float(path.time_per_epoch * epochs)
        first_energy, first_time = self.trace.profiling_epoch(batch_size)
        return (
            first_energy + float(path.energy_per_epoch * (epochs - 1)),
            first_time + float(path.time_per_epoch * (epochs - 1)),
        )


def _summarise_recurrence(number: int, runs: list[Run]) -> Recurrence:
    last = runs[-1]
    return Recurrence(
        number=number,
        batch_size=last.batch_size,
        power_limit=last.power_limit,
        epochs=last.epochs,
        energy=sum(run.energy for run in runs),
        time=sum(run.time for run in runs),
        cost=sum(run.cost for run in runs),
        converged=last.reached_target,
        tries=len(runs),
    )


def summary_of(result: SimulationResult, trace: WorkloadTrace, eta_knob: float) -> dict[str, Any]:
    """Cumulative cost, regret against the oracle, savings against the default, settling point."""
    count = len(result.recurrences)
    energy = sum(run.energy for run in result.runs)
    time = sum(run.time for run in result.runs)
    cost = sum(run.cost for run in result.runs)
    oracle = oracle_batch_size(trace, eta_knob)
    baseline = default_baseline(trace, eta_knob)
    chosen = [recurrence.batch_size for recurrence in result.recurrences]
    return {
        "recurrences": count,
        "runs": len(result.runs),
        "cumulative_cost": cost,
        "cumulative_energy": energy,
        "cumulative_time": time,
        "oracle": oracle,
        "regret": cost - count * oracle["expected_cost"] if oracle else None,
        "regret_oracle_recurrences": regret_in_oracle_recurrences(cost, count, trace, eta_knob),
        "baseline": baseline,
        "energy_saved_fraction": 1 - energy / (count * baseline["expected_energy"]),
        "time_saved_fraction": 1 - time / (count * baseline["expected_time"]),
        "cost_saved_fraction": 1 - cost / (count * baseline["expected_cost"]),
        "final_batch_size": chosen[-1] if chosen else None,
        "settled_after_recurrence": settled_after(chosen),
    }


def regret_in_oracle_recurrences(cost: float, recurrences: int, trace: WorkloadTrace, eta_knob: float) -> float:
    """POLICY.md's figure of merit: (cumulative cost - N x oracle cost) / oracle cost."""
    oracle = oracle_recurrence_cost(trace, eta_knob)
    return (cost - recurrences * oracle) / oracle


def oracle_recurrence_cost(trace: WorkloadTrace, eta_knob: float) -> float:
    """The lowest expected cost of a recurrence with one fixed batch size (at the power limit
    the simulator picks for it), over its recorded runs, retries priced in: a size whose runs
    miss the target with probability p costs E[success] + p / (1 - p) x E[failure]."""
    max_epochs = trace.workload.max_epochs
    best = math.inf
    for size in trace.batch_sizes:
        try:
            limit = trace.best_power_limit(size, eta_knob)
        except SimulationError:
            continue
        rows = trace.size_rows(size)
        rows = rows.loc[rows.power_limit == limit]
        epoch_cost = energy_time_cost(rows.energy_per_epoch, rows.time_per_epoch, eta_knob, trace.max_power)
        reached = rows.target_epoch.notna() & (rows.target_epoch <= max_epochs)
        if not reached.any():
            continue
        success = float((rows.target_epoch[reached] * epoch_cost[reached]).mean())
        missing = float(1 - reached.mean())
        failure = float((max_epochs * epoch_cost[~reached]).mean()) if missing else 0.0
        best = min(best, success + missing / (1 - missing) * failure)
    if best == math.inf:
        raise SimulationError("No batch size of the traces ever reaches the target: no oracle")
    return best


def settled_after(chosen: list[int]) -> int:
    """The last recurrence whose batch size differs from the final choice (0: never changed)."""
    for index in range(len(chosen) - 1, -1, -1):
        if chosen[index] != chosen[-1]:
            return index + 1
    return 0


def _expected_run(trace: WorkloadTrace, batch_size: int, power_limit: float, eta_knob: float) -> dict[str, Any] | None:
    """Mean energy, time and cost over the recorded runs at these knobs, if all reach the target."""
    rows = trace.size_rows(batch_size)
    rows = rows.loc[rows.power_limit == power_limit]
    max_epochs = trace.workload.max_epochs
    if rows.empty or rows.target_epoch.isna().any() or (rows.target_epoch > max_epochs).any():
        return None
    energy = float((rows.target_epoch * rows.energy_per_epoch).mean())
    time = float((rows.target_epoch * rows.time_per_epoch).mean())
    return {
        "batch_size": batch_size,
        "power_limit": int(power_limit),
        "expected_energy": energy,
        "expected_time": time,
        "expected_cost": energy_time_cost(energy, time, eta_knob, trace.max_power),
    }


def oracle_batch_size(trace: WorkloadTrace, eta_knob: float) -> dict[str, Any] | None:
    """The fixed batch size (at its profiled power limit) cheapest in expectation, in hindsight.

    Only sizes whose every recorded run reaches the target within max_epochs qualify:
    a fixed choice that sometimes fails has no single expected cost without a retry policy.
    """
    candidates = []
    for size in trace.batch_sizes:
        try:
            limit = trace.best_power_limit(size, eta_knob)
        except SimulationError:
            continue
        expected = _expected_run(trace, size, limit, eta_knob)
        if expected is not None:
            candidates.append(expected)
    return min(candidates, key=lambda candidate: candidate["expected_cost"], default=None)


def default_baseline(trace: WorkloadTrace, eta_knob: float) -> dict[str, Any]:
    """Always training with the default batch size at its maximum power limit (no Zeus)."""
    size = trace.workload.default_batch_size
    expected = _expected_run(trace, size, trace.highest_power_limit(size), eta_knob)
    if expected is None:
        raise SimulationError(
            f"The default batch size {size} does not reach the target in every recorded run; "
            "no baseline to compare against"
        )
    return expected
