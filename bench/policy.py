"""Policy benchmark: LSTS against Zeus's policy on every shipped workload and GPU. Prints JSON.

Both policies run in the real simulator (``bso simulate``'s trainer) against the Job
aggregate itself, held in memory (``AggregateClient``: the service's decisions without
its event store, checked equal to the application's in tests), on paired draws: the k-th run of batch size b in seed s is
the same recorded run whatever the policy did before. Per cell (workload x GPU) and
overall it prints each policy's regret in oracle recurrences (POLICY.md: (cumulative
cost - N x oracle cost) / oracle cost), its mean, standard deviation and 95th percentile,
the ratio of the means, the paired difference and its standard error, the jobs left
with no converged batch size, and the energy to target against always training with
the default batch size.

    python -m bench.policy --seeds 100 --recurrences 200 --processes 2
"""

import argparse
import json
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import cache
from typing import Any

import numpy as np

from application.simulator import (
    PAIRED_DRAWS,
    AggregateClient,
    Knobs,
    SimulationError,
    TraceSimulator,
    WorkloadTrace,
    default_baseline,
    oracle_recurrence_cost,
)
from application.traces import Workload
from domain.errors import DomainError
from domain.spec import LSTS, POLICIES, ZEUS
from infrastructure.trace_data import SHIPPED_GPUS, WORKLOAD_PRESETS, Traces, shipped_power_trace, shipped_train_trace

ETA = 0.5


@cache
def cell_trace(workload_name: str, gpu: str) -> WorkloadTrace:
    """The cell's trace; the default batch size capped by the GPU's largest traced size."""
    traces = Traces.load(shipped_train_trace(), shipped_power_trace(gpu))
    preset: Workload = WORKLOAD_PRESETS[workload_name]
    largest = traces.batch_sizes(preset)[-1]
    return WorkloadTrace(traces, replace(preset, default_batch_size=min(preset.default_batch_size, largest)))


def simulate(workload_name: str, gpu: str, seed: int, policy: str, recurrences: int) -> dict[str, float] | None:
    """One job of N recurrences: its cumulative cost and energy; None if it was left with no
    converged batch size (the policy gave up, or 20 tries in a row missed the target)."""
    knobs = Knobs(eta_knob=ETA, beta_knob=2.0, mab_seed=seed, policy=policy)
    simulator = TraceSimulator(cell_trace(workload_name, gpu), AggregateClient(), knobs, seed, gpu, PAIRED_DRAWS)
    try:
        result = simulator.run(recurrences, summarise=False)
    except (SimulationError, DomainError):
        return None
    return {"cost": sum(run.cost for run in result.runs), "energy": sum(run.energy for run in result.runs)}


def one_seed(task: tuple[str, str, int, int]) -> dict[str, Any]:
    workload_name, gpu, seed, recurrences = task
    runs = {policy: simulate(workload_name, gpu, seed, policy, recurrences) for policy in POLICIES}
    return {"cell": f"{workload_name}/{gpu}", "seed": seed, **runs}


def summarise_cell(cell: str, jobs: list[dict[str, Any]], recurrences: int) -> dict[str, Any]:
    trace = cell_trace(*cell.split("/"))
    oracle = oracle_recurrence_cost(trace, ETA)
    default_energy = default_baseline(trace, ETA)["expected_energy"]
    summary: dict[str, Any] = {"cell": cell, "seeds": len(jobs), "oracle_cost": oracle}
    regrets: dict[str, list[float | None]] = {}
    for policy in POLICIES:
        finished = [job[policy] for job in jobs if job[policy] is not None]
        regrets[policy] = [
            None if job[policy] is None else (job[policy]["cost"] - recurrences * oracle) / oracle for job in jobs
        ]
        values = [regret for regret in regrets[policy] if regret is not None]
        summary[policy] = {
            "regret_mean": statistics.fmean(values),
            "regret_sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "regret_p95": float(np.percentile(values, 95)),
            "energy_vs_default": statistics.fmean(run["energy"] for run in finished) / (recurrences * default_energy),
            "no_converged_jobs": len(jobs) - len(finished),
        }
    paired = [(l, z) for l, z in zip(regrets[LSTS], regrets[ZEUS]) if l is not None and z is not None]
    differences = [l - z for l, z in paired]
    summary["ratio"] = summary[LSTS]["regret_mean"] / summary[ZEUS]["regret_mean"]
    summary["paired_difference"] = statistics.fmean(differences)
    spread = statistics.stdev(differences) if len(differences) > 1 else math.nan
    summary["paired_difference_se"] = spread / math.sqrt(len(differences))
    summary["worse_beyond_noise"] = summary["paired_difference"] > max(2 * summary["paired_difference_se"], 0.1)
    return summary


def overall(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [summary["ratio"] for summary in summaries]
    return {
        "M": statistics.fmean(ratios),
        "worst_cell_ratio": max(ratios),
        "cells_worse_beyond_noise": [s["cell"] for s in summaries if s["worse_beyond_noise"]],
        "cells_where_lsts_p95_exceeds_zeus": [
            s["cell"] for s in summaries if s[LSTS]["regret_p95"] > s[ZEUS]["regret_p95"]
        ],
        "no_converged_jobs": {policy: sum(s[policy]["no_converged_jobs"] for s in summaries) for policy in POLICIES},
        "energy_vs_default_mean": {
            policy: statistics.fmean(s[policy]["energy_vs_default"] for s in summaries) for policy in POLICIES
        },
    }


def table(summaries: list[dict[str, Any]]) -> str:
    lines = [
        f"{'cell':<26} {'zeus mean±sd':>16} {'lsts mean±sd':>16} {'ratio':>6} {'diff±se':>14} "
        f"{'p95 z/l':>13} {'energy z/l':>11} {'fail z/l':>8}"
    ]
    for s in summaries:
        z, l = s[ZEUS], s[LSTS]
        lines.append(
            f"{s['cell']:<26} {z['regret_mean']:>8.2f}±{z['regret_sd']:<7.2f} {l['regret_mean']:>8.2f}±{l['regret_sd']:<7.2f} "
            f"{s['ratio']:>6.2f} {s['paired_difference']:>7.2f}±{s['paired_difference_se']:<6.2f} "
            f"{z['regret_p95']:>6.1f}/{l['regret_p95']:<6.1f} {z['energy_vs_default']:>5.2f}/{l['energy_vs_default']:<5.2f} "
            f"{z['no_converged_jobs']:>3}/{l['no_converged_jobs']:<3}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", nargs="*", default=sorted(WORKLOAD_PRESETS))
    parser.add_argument("--gpus", nargs="*", default=list(SHIPPED_GPUS))
    parser.add_argument("--seeds", type=int, default=100, help="seeds per cell, from --first-seed (default 100)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--recurrences", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    tasks = [
        (workload, gpu, seed, args.recurrences)
        for workload in args.workloads
        for gpu in args.gpus
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        jobs = list(pool.map(one_seed, tasks, chunksize=4))
    cells: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        cells.setdefault(job["cell"], []).append(job)
    summaries = [summarise_cell(cell, cell_jobs, args.recurrences) for cell, cell_jobs in cells.items()]
    print(table(summaries), file=sys.stderr)
    report = {
        "command": "python -m bench.policy " + " ".join(sys.argv[1:]),
        "seconds": round(time.perf_counter() - started, 1),
        "overall": overall(summaries),
        "cells": summaries,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
