"""Trace-driven simulation of a recurring training job, as a trainer of the optimizer.

The simulator plays the trainer's side only: it asks the optimizer (the real
application in-process, or a server over HTTP) for a batch size, picks a power
limit, "trains" by sampling one recorded run from the Zeus traces, and reports the
result. Every batch size decision is the optimizer's; the trainer-side choices
(power limit, pre-computed early stop) follow Zeus's own simulator that drives its
server over HTTP, so that the same seeds give the same sequence of runs.
"""

import math
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol
from uuid import uuid4

import numpy as np
import pandas as pd

from application.drift import NONE, Drift, epochs_to_target
from application.service import BatchSizeOptimizer
from application.traces import TraceSource, Workload
from domain.cost import energy_time_cost, epoch_cost_at_power
from domain.job import Job
from domain.reporting import EpochReport
from domain.spec import ZEUS, JobSpec

MAX_TRIES_PER_RECURRENCE = 20


class SimulationError(RuntimeError):
    """The simulation cannot be set up or priced (e.g. the traces lack a batch size)."""


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
    # The stop rule's guards; None is not sent, so that the server's default for the policy applies.
    stop_window: int | None = None
    bound_escalation: bool | None = None
    predictive_stop: bool | None = None

    def stop_rule_fields(self) -> dict[str, Any]:
        """The job spec fields of the guards that were set."""
        given = {
            "stop_window": self.stop_window,
            "bound_escalation": self.bound_escalation,
            "predictive_stop": self.predictive_stop,
        }
        return {name: value for name, value in given.items() if value is not None}


def trainer_bounds_runs(knobs: Knobs) -> bool:
    """Whether the trainer stops runs by its own rule, as Zeus's simulator does (beta x the
    cheapest recurrence so far, in whole epochs). Only for plain Zeus, whose reference
    sequence needs it; a guard (a stop window, bound escalation, predictive stop) or another
    policy makes a bound that only the server knows, so there the trainer asks the server."""
    return knobs.policy == ZEUS and not knobs.stop_window and not knobs.bound_escalation and not knobs.predictive_stop


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
    """One recurrence of the job: its runs until one reached the target, or until the tries
    ran out (bricked: converged false)."""

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
    drift: Drift = Drift()
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
        self._recurrence_costs: dict[tuple[int, float, float], float] = {}
        self._highest_limits: dict[int, float] = {}

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
        if batch_size not in self._highest_limits:  # asked for by every run Zeus's trainer bounds
            self._highest_limits[batch_size] = float(self.size_rows(batch_size).power_limit.max())
        return self._highest_limits[batch_size]

    def expected_recurrence_cost(self, batch_size: int, eta_knob: float, epochs_factor: float = 1.0) -> float:
        """The expected cost of a recurrence at this size (at the power limit the simulator picks
        for it), over its recorded runs with their epochs to target scaled by ``epochs_factor``,
        retries priced in: a size whose runs miss the target with probability p costs
        E[success] + p / (1 - p) x E[failure]. Infinite when no run reaches the target."""
        key = (batch_size, eta_knob, epochs_factor)
        if key not in self._recurrence_costs:  # the oracle asks for every recurrence: work it out once
            self._recurrence_costs[key] = self._expected_recurrence_cost(batch_size, eta_knob, epochs_factor)
        return self._recurrence_costs[key]

    def _expected_recurrence_cost(self, batch_size: int, eta_knob: float, epochs_factor: float) -> float:
        if batch_size not in self._by_size:
            return math.inf
        max_epochs = self.workload.max_epochs
        rows = self.size_rows(batch_size)
        rows = rows.loc[rows.power_limit == self.best_power_limit(batch_size, eta_knob)]
        epoch_cost = energy_time_cost(rows.energy_per_epoch, rows.time_per_epoch, eta_knob, self.max_power)
        epochs = pd.Series(
            [epochs_to_target(target, epochs_factor, max_epochs) for target in rows.target_epoch],
            index=rows.index,
            dtype=float,
        )
        reached = epochs.notna()
        if not reached.any():
            return math.inf
        success = float((epochs[reached] * epoch_cost[reached]).mean())
        missing = float(1 - reached.mean())
        failure = float((max_epochs * epoch_cost[~reached]).mean()) if missing else 0.0
        return success + missing / (1 - missing) * failure


@dataclass(frozen=True)
class _Draw:
    """A recorded run as the recurrence's drift makes it: what its first epochs measure, and
    when it reaches the target."""

    energy_per_epoch: float
    time_per_epoch: float
    profiling_epoch: tuple[float, float] | None  # (energy, time) of a first epoch that profiles power
    cost_factor: float
    target_epoch: int | None  # None: not within max_epochs

    def measured(self, epochs: float) -> tuple[float, float]:
        """Energy and time of the first ``epochs`` epochs; a profiling first epoch costs the mean over limits."""
        if self.profiling_epoch is None:
            energy, time = self.energy_per_epoch * epochs, self.time_per_epoch * epochs
        else:
            first_energy, first_time = self.profiling_epoch
            energy = first_energy + self.energy_per_epoch * (epochs - 1)
            time = first_time + self.time_per_epoch * (epochs - 1)
        return self.cost_factor * energy, self.cost_factor * time


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
        drift_scenario: str = NONE,
    ) -> None:
        self.trace = trace
        self.client = client
        self.knobs = knobs
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.draws = draws
        self.drift_scenario = drift_scenario
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
            **self.knobs.stop_rule_fields(),
        }

    def run(
        self, recurrences: int, progress: Callable[[int, int], None] | None = None, summarise: bool = True
    ) -> SimulationResult:
        drift = drift_for(self.trace, self.knobs.eta_knob, self.drift_scenario, recurrences)
        spec = self.job_spec()
        job_id = self.client.register(spec)
        result = SimulationResult(job_id=job_id, spec=spec, workload=asdict(self.trace.workload), drift=drift)
        min_cost = math.inf
        for number in range(1, recurrences + 1):
            runs = self._recur(job_id, number, min_cost, drift)
            result.runs.extend(runs)
            recurrence = _summarise_recurrence(number, runs)
            result.recurrences.append(recurrence)
            if recurrence.converged:  # a bricked recurrence trained nothing to compare a run with
                min_cost = min(min_cost, recurrence.cost)
            if progress is not None:
                progress(number, recurrences)
        if summarise:
            result.summary = summary_of(result, self.trace, self.knobs.eta_knob)
        return result

    def _recur(self, job_id: str, number: int, min_cost: float, drift: Drift) -> list[Run]:
        """Train until a run reaches the target; each retry is a new trial. A recurrence that
        misses it MAX_TRIES_PER_RECURRENCE times is bricked, and the job goes on with the next
        one, as its team would: one bad recurrence must not hide how the policy does later."""
        runs: list[Run] = []
        for attempt in range(1, MAX_TRIES_PER_RECURRENCE + 1):
            batch_size, trial_number = self.client.predict(job_id)
            profiled_power = batch_size not in self._power_limit
            if profiled_power:
                self._power_limit[batch_size] = self.trace.best_power_limit(batch_size, self.knobs.eta_knob)
            power_limit = self._power_limit[batch_size]
            draw = self._draw(batch_size, power_limit, profiled_power, drift, number - 1)
            if trainer_bounds_runs(self.knobs):
                outcome, answer = self._train_to_zeus_bound(job_id, trial_number, batch_size, draw, min_cost)
            else:
                outcome, answer = self._train_to_server_bound(job_id, trial_number, batch_size, draw)
            cost = energy_time_cost(outcome.energy, outcome.time, self.knobs.eta_knob, self.trace.max_power)
            runs.append(
                Run(number, attempt, trial_number, batch_size, power_limit, outcome.epochs,
                    outcome.energy, outcome.time, cost, outcome.reached, profiled_power,
                    bool(answer["converged"]))
            )
            if outcome.reached:
                break
        return runs

    def _train_to_zeus_bound(
        self, job_id: str, trial_number: int, batch_size: int, draw: _Draw, min_cost: float
    ) -> tuple[_Outcome, dict[str, Any]]:
        """Zeus's simulator's trainer: it stops a run at the largest whole number of epochs within
        beta x the cheapest recurrence so far, and reports once (epoch max_epochs unless the run
        reached the target)."""
        beta = math.inf if self.knobs.beta_knob is None else self.knobs.beta_knob
        cost_bound = beta * min_cost
        max_epochs = self.trace.workload.max_epochs
        budget: float = max_epochs
        if cost_bound != math.inf:
            # Time is priced at this size's highest power limit, as Zeus's simulator does.
            epoch_cost = energy_time_cost(
                draw.cost_factor * draw.energy_per_epoch,
                draw.cost_factor * draw.time_per_epoch,
                self.knobs.eta_knob,
                self.trace.highest_power_limit(batch_size),
            )
            budget = min(cost_bound // epoch_cost, max_epochs)
        if budget == 0:
            # Not even one epoch is affordable: it is charged one epoch and reported as failed.
            outcome = _Outcome(1, *draw.measured(1), False, max_epochs)
        elif draw.target_epoch is not None and draw.target_epoch <= budget:
            outcome = _Outcome(float(draw.target_epoch), *draw.measured(draw.target_epoch), True, draw.target_epoch)
        else:
            outcome = _Outcome(float(budget), *draw.measured(budget), False, max_epochs)
        return outcome, self._report(job_id, trial_number, outcome, batch_size)

    def _train_to_server_bound(
        self, job_id: str, trial_number: int, batch_size: int, draw: _Draw
    ) -> tuple[_Outcome, dict[str, Any]]:
        """A per-epoch trainer under the bound the server decided. The run ends at the first
        epoch whose cost passes the bound (consumed and reported, so that the server stops the
        trial on its bound), unless the target comes first or the epochs run out, or sooner where
        the server says stop (predictive stop). To keep simulations fast it reports only the
        epochs where the server may say so: the first (the dearest per epoch: it profiles the
        power limits) and the last within the bound (the next one would pass it); exact when
        every epoch after the first costs the same, as in the traces."""
        bound = self.client.run_cost_bound(job_id, trial_number)
        outcome, last_within = self._run_within(draw, math.inf if bound is None else bound)
        for epoch in sorted({1, last_within}):
            if 1 <= epoch < outcome.reported_epoch:
                early = _Outcome(float(epoch), *draw.measured(epoch), False, epoch)
                answer = self._report(job_id, trial_number, early, batch_size)
                if answer["stop_train"]:
                    return early, answer
        return outcome, self._report(job_id, trial_number, outcome, batch_size)

    def _run_within(self, draw: _Draw, bound: float) -> tuple[_Outcome, int]:
        """Where a run ends under this bound, its costs priced as the server prices reports, and
        the last epoch within the bound."""
        max_epochs = self.trace.workload.max_epochs

        def cost_after(epochs: int) -> float:
            return energy_time_cost(*draw.measured(epochs), self.knobs.eta_knob, self.trace.max_power)

        # Costs grow with every epoch, so the epochs within the bound are a prefix.
        crossing = 1 + bisect_right(range(1, max_epochs + 1), bound, key=cost_after)
        target = draw.target_epoch
        if target is not None and target < crossing:
            return _Outcome(float(target), *draw.measured(target), True, target), crossing - 1
        epochs = min(crossing, max_epochs)
        return _Outcome(float(epochs), *draw.measured(epochs), False, epochs), crossing - 1

    def _report(self, job_id: str, trial_number: int, outcome: _Outcome, batch_size: int) -> dict[str, Any]:
        target = self.trace.workload.target_metric
        metric = target + 1 if outcome.reached else target - 1
        report = EpochReport(trial_number, batch_size, outcome.time, outcome.energy, metric, outcome.reported_epoch)
        return self.client.report(job_id, report)

    def _draw(self, batch_size: int, power_limit: int, profiled_power: bool, drift: Drift, recurrence: int) -> _Draw:
        """A recorded run of these knobs, as the drift of this recurrence (0-based) makes it."""
        path = self._sample(batch_size, power_limit)
        return _Draw(
            energy_per_epoch=float(path.energy_per_epoch),
            time_per_epoch=float(path.time_per_epoch),
            profiling_epoch=self.trace.profiling_epoch(batch_size) if profiled_power else None,
            cost_factor=drift.cost_factor(recurrence, batch_size),
            target_epoch=epochs_to_target(
                float(path.target_epoch), drift.epochs_factor(recurrence, batch_size), self.trace.workload.max_epochs
            ),
        )

    def _sample(self, batch_size: int, power_limit: int) -> pd.Series:
        if self.draws == ZEUS_DRAWS:
            return self.trace.sample_run(batch_size, power_limit, self.rng)
        key = (batch_size, power_limit)
        stream = self._paired.setdefault(key, np.random.default_rng([self.seed, batch_size, power_limit]))
        return self.trace.run_at(batch_size, power_limit, int(stream.integers(self.trace.run_count(batch_size, power_limit))))


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
    drift = result.drift
    return {
        "recurrences": count,
        "runs": len(result.runs),
        "bricked_recurrences": sum(not recurrence.converged for recurrence in result.recurrences),
        "drift": {"scenario": drift.scenario, "g": drift.g, "b_old": drift.b_old, "b_new": drift.b_new},
        "cumulative_cost": cost,
        "cumulative_energy": energy,
        "cumulative_time": time,
        "oracle": oracle,
        "regret": cost - count * oracle["expected_cost"] if oracle else None,
        "regret_oracle_recurrences": regret_in_oracle_recurrences(
            result.recurrences, recurrence_oracle_costs(trace, eta_knob, drift)
        ),
        "baseline": baseline,
        "energy_saved_fraction": 1 - energy / (count * baseline["expected_energy"]),
        "time_saved_fraction": 1 - time / (count * baseline["expected_time"]),
        "cost_saved_fraction": 1 - cost / (count * baseline["expected_cost"]),
        "final_batch_size": chosen[-1] if chosen else None,
        "settled_after_recurrence": settled_after(chosen),
    }


def regret_in_oracle_recurrences(recurrences: list[Recurrence], oracles: list[float]) -> float:
    """POLICY.md's figure of merit with the oracle of each recurrence (DRIFT.md): the sum over
    recurrences of (cost - oracle) / oracle. Without drift every oracle is the same, and this
    is (cumulative cost - N x oracle cost) / oracle cost."""
    return sum((recurrence.cost - oracle) / oracle for recurrence, oracle in zip(recurrences, oracles, strict=True))


def recurrence_oracle_costs(trace: WorkloadTrace, eta_knob: float, drift: Drift) -> list[float]:
    """The oracle of each recurrence: the lowest expected cost of a recurrence under that
    recurrence's drift factors (a size that then misses the target more often prices the retries)."""
    oracles = []
    for recurrence in range(drift.recurrences):
        oracle = min(
            drift.cost_factor(recurrence, size)
            * trace.expected_recurrence_cost(size, eta_knob, drift.epochs_factor(recurrence, size))
            for size in trace.batch_sizes
        )
        if oracle == math.inf:
            raise SimulationError(f"No batch size reaches the target at recurrence {recurrence + 1}: no oracle")
        oracles.append(oracle)
    return oracles


def drift_for(trace: WorkloadTrace, eta_knob: float, scenario: str, recurrences: int) -> Drift:
    """The drift scenario on this workload x GPU, chosen from the expected costs without drift."""
    return Drift.on(scenario, expected_costs(trace, eta_knob), recurrences)


def expected_costs(trace: WorkloadTrace, eta_knob: float) -> dict[int, float]:
    """The expected recurrence cost of every batch size that some recorded run brings to the target."""
    costs = {size: trace.expected_recurrence_cost(size, eta_knob) for size in trace.batch_sizes}
    viable = {size: cost for size, cost in costs.items() if cost != math.inf}
    if not viable:
        raise SimulationError("No batch size of the traces ever reaches the target: no oracle")
    return viable


def oracle_recurrence_cost(trace: WorkloadTrace, eta_knob: float) -> float:
    """The lowest expected cost of a recurrence with one fixed batch size, without drift."""
    return min(expected_costs(trace, eta_knob).values())


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
