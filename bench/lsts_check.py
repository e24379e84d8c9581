"""Scaffold: does LSTS (domain/lsts.py) beat Zeus on the shipped traces? Prints JSON figures.

A stop-gap for the lead, to be replaced by the real simulator (``bso simulate --policy``) and
``bench/policy.py`` once LSTS is wired into the Job aggregate. Until then LSTS is driven
here through its pure functions, by a trainer that is the simulator's own (power limits,
profiling epoch, early stop priced as Zeus's simulator prices it) with one change: the
cost bound of a run is the one LSTS decided at dispatch. Zeus runs through the real
in-process application and the unchanged simulator.

Both policies see paired draws: the k-th run of batch size b in seed s is the same
recorded run whatever the policy did before (one generator per seed and batch size).
Regret is in oracle recurrences, as POLICY.md defines it.

    .venv/bin/python -m bench.lsts_check --seeds 100 --processes 2

Measured so (18 cells, N = 200, seeds 1-100): M = 0.617, worst cell 0.87 (imagenet/p100), no
cell worse beyond noise, no job without a converged batch size, LSTS's 95th percentile and
energy against the default no worse than Zeus's in any cell.
"""

import argparse
import json
import math
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from application.service import BatchSizeOptimizer
from application.simulator import (
    InProcessClient,
    Knobs,
    SimulationError,
    TraceSimulator,
    WorkloadTrace,
    default_baseline,
)
from application.traces import Workload
from domain.cost import energy_time_cost
from domain.errors import DomainError
from domain.lsts import (
    LstsKnobs,
    apply_dispatch,
    apply_observation,
    decide_dispatch,
    initial_state,
    judge_result,
)
from domain.randomness import seeded_generator_state
from infrastructure.settings import persistence_env
from infrastructure.trace_data import (
    SHIPPED_GPUS,
    WORKLOAD_PRESETS,
    Traces,
    shipped_power_trace,
    shipped_train_trace,
)

ETA = 0.5
BETA = 2.0


class PairedTrace(WorkloadTrace):
    """A workload trace whose k-th run of a batch size depends only on the seed, not on history."""

    def __init__(self, traces: Traces, workload: Workload, seed: int) -> None:
        super().__init__(traces, workload)
        self.seed = seed
        self._streams: dict[tuple[int, int], np.random.Generator] = {}

    def sample_run(self, batch_size: int, power_limit: int, rng: np.random.Generator) -> pd.Series:
        # The simulator's shared generator is ignored on purpose: it would couple the draws
        # of one size to how many runs of other sizes came before.
        key = (batch_size, power_limit)
        stream = self._streams.setdefault(key, np.random.default_rng([self.seed, batch_size, power_limit]))
        rows = self._by_size_limit[key]
        return rows.iloc[int(stream.integers(len(rows)))]


@cache
def load_traces(gpu: str) -> Traces:
    return Traces.load(shipped_train_trace(), shipped_power_trace(gpu))


def cell_workload(name: str, gpu: str) -> Workload:
    """The preset, with the default capped by the GPU's largest traced size (as bso simulate does)."""
    workload = WORKLOAD_PRESETS[name]
    largest = load_traces(gpu).batch_sizes(workload)[-1]
    return replace(workload, default_batch_size=min(workload.default_batch_size, largest))


def oracle_cost(trace: WorkloadTrace, eta: float) -> float:
    """Lowest expected cost of a recurrence over fixed batch sizes at their profiled power limit.

    A run that misses the target trains max_epochs and is retried, so a size whose runs fail
    with probability p costs E[success] + p / (1 - p) x E[failure] in expectation.
    """
    max_epochs = trace.workload.max_epochs
    best = math.inf
    for size in trace.batch_sizes:
        try:
            limit = trace.best_power_limit(size, eta)
        except SimulationError:
            continue
        rows = trace.size_rows(size)
        rows = rows.loc[rows.power_limit == limit]
        epoch_cost = energy_time_cost(rows.energy_per_epoch, rows.time_per_epoch, eta, trace.max_power)
        reached = rows.target_epoch.notna() & (rows.target_epoch <= max_epochs)
        if not reached.any():
            continue
        success = float((rows.target_epoch[reached] * epoch_cost[reached]).mean())
        failing = float(1 - reached.mean())
        failure = float((max_epochs * epoch_cost[~reached]).mean()) if failing else 0.0
        best = min(best, success + failing / (1 - failing) * failure)
    return best


class LstsTrainer(TraceSimulator):
    """The simulator's trainer, asking LSTS's pure functions instead of the service."""

    def __init__(self, trace: PairedTrace, seed: int, gpu: str, knobs: LstsKnobs) -> None:
        super().__init__(trace, client=None, knobs=Knobs(eta_knob=ETA, beta_knob=None), seed=seed, gpu_model=gpu)  # type: ignore[arg-type]
        self.lsts_knobs = knobs
        self.state = initial_state(trace.workload.default_batch_size)
        self.generator = seeded_generator_state(seed)

    def run_costs(self, recurrences: int) -> tuple[float, float]:
        """Cumulative (cost, energy) over the recurrences."""
        cost = energy = 0.0
        for number in range(recurrences):
            for _ in range(20):
                run_cost, run_energy, reached = self._one_run()
                cost, energy = cost + run_cost, energy + run_energy
                if reached:
                    break
            else:
                raise SimulationError(f"Recurrence {number + 1} did not reach the target in 20 tries")
        return cost, energy

    def _one_run(self) -> tuple[float, float, bool]:
        workload = self.trace.workload
        dispatch = decide_dispatch(self.state, self.lsts_knobs, workload.default_batch_size, self.generator)
        apply_dispatch(self.state, dispatch)
        if dispatch.generator_state is not None:
            self.generator = dispatch.generator_state
        size = dispatch.batch_size
        profiled = size not in self._power_limit
        if profiled:
            self._power_limit[size] = self.trace.best_power_limit(size, ETA)
        bound = math.inf if dispatch.cost_bound is None else dispatch.cost_bound
        outcome = self._train(size, self._power_limit[size], bound, profiled)
        cost = energy_time_cost(outcome.energy, outcome.time, ETA, self.trace.max_power)
        # What the service's stop rule would answer to the final report.
        converged = outcome.reached and cost <= bound
        observation = judge_result(
            self.state, self.lsts_knobs, self.trace.batch_sizes, workload.default_batch_size,
            size, dispatch.kind, converged, cost,
        )
        apply_observation(self.state, observation)
        return cost, outcome.energy, outcome.reached


def run_zeus(trace: PairedTrace, seed: int, gpu: str, recurrences: int) -> tuple[float, float]:
    optimizer = BatchSizeOptimizer(env=persistence_env("memory://"))
    try:
        knobs = Knobs(eta_knob=ETA, beta_knob=BETA, mab_seed=seed)
        result = TraceSimulator(trace, InProcessClient(optimizer), knobs, seed, gpu).run(recurrences)
    finally:
        optimizer.close()
    return result.summary["cumulative_cost"], result.summary["cumulative_energy"]


def one_job(task: tuple[str, str, int, int, bool]) -> dict[str, Any]:
    workload_name, gpu, seed, recurrences, with_zeus = task
    workload = cell_workload(workload_name, gpu)
    traces = load_traces(gpu)
    figures: dict[str, Any] = {"cell": f"{workload_name}/{gpu}", "seed": seed}
    lsts = LstsTrainer(PairedTrace(traces, workload, seed), seed, gpu, LstsKnobs())
    try:
        figures["lsts"] = lsts.run_costs(recurrences)
    except SimulationError:
        figures["lsts"] = None
    figures["lsts_no_converged"] = lsts.state["best"] is None
    if with_zeus:
        try:
            figures["zeus"] = run_zeus(PairedTrace(traces, workload, seed), seed, gpu, recurrences)
        except (SimulationError, DomainError):
            figures["zeus"] = None
    return figures


@cache
def cell_reference(workload_name: str, gpu: str) -> tuple[float, float]:
    """(oracle cost, default batch size's expected energy) of a cell."""
    trace = WorkloadTrace(load_traces(gpu), cell_workload(workload_name, gpu))
    return oracle_cost(trace, ETA), default_baseline(trace, ETA)["expected_energy"]


def summarise_cell(cell: str, jobs: list[dict[str, Any]], recurrences: int) -> dict[str, Any]:
    workload_name, gpu = cell.split("/")
    oracle, default_energy = cell_reference(workload_name, gpu)
    summary: dict[str, Any] = {"cell": cell, "seeds": len(jobs), "oracle_cost": oracle}
    regrets: dict[str, list[float]] = {}
    for policy in ("lsts", "zeus"):
        finished = [job[policy] for job in jobs if job.get(policy) is not None]
        if policy not in jobs[0]:
            continue
        regret = [(cost - recurrences * oracle) / oracle for cost, _ in finished]
        regrets[policy] = regret
        summary[policy] = {
            "regret_mean": statistics.fmean(regret),
            "regret_sd": statistics.stdev(regret) if len(regret) > 1 else 0.0,
            "regret_p95": float(np.percentile(regret, 95)),
            "energy_vs_default": statistics.fmean(energy for _, energy in finished) / (recurrences * default_energy),
            "failed_jobs": len(jobs) - len(finished),
        }
    summary["lsts"]["no_converged_jobs"] = sum(job["lsts_no_converged"] for job in jobs)
    if "zeus" in regrets and len(regrets["zeus"]) == len(regrets["lsts"]):
        differences = [a - b for a, b in zip(regrets["lsts"], regrets["zeus"])]
        summary["ratio"] = summary["lsts"]["regret_mean"] / summary["zeus"]["regret_mean"]
        summary["paired_difference"] = statistics.fmean(differences)
        summary["paired_difference_se"] = statistics.stdev(differences) / math.sqrt(len(differences))
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", nargs="*", default=sorted(WORKLOAD_PRESETS))
    parser.add_argument("--gpus", nargs="*", default=list(SHIPPED_GPUS))
    parser.add_argument("--seeds", type=int, default=20, help="seeds per cell (1..N)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--recurrences", type=int, default=200)
    parser.add_argument("--no-zeus", action="store_true", help="LSTS alone (fast)")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    tasks = [
        (workload, gpu, seed, args.recurrences, not args.no_zeus)
        for workload in args.workloads
        for gpu in args.gpus
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        jobs = list(pool.map(one_job, tasks, chunksize=4))
    cells: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        cells.setdefault(job["cell"], []).append(job)
    summaries = [summarise_cell(cell, cell_jobs, args.recurrences) for cell, cell_jobs in cells.items()]
    report: dict[str, Any] = {"command": " ".join(sys.argv), "cells": summaries}
    ratios = [summary["ratio"] for summary in summaries if "ratio" in summary]
    if ratios:
        report["M"] = statistics.fmean(ratios)
        report["worst_cell_ratio"] = max(ratios)
        report["cells_worse_beyond_noise"] = [
            summary["cell"]
            for summary in summaries
            if summary["paired_difference"] > max(2 * summary["paired_difference_se"], 0.1)
        ]
    report["lsts_no_converged_jobs"] = sum(summary["lsts"]["no_converged_jobs"] for summary in summaries)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
