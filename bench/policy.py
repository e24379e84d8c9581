"""Policy benchmark: LSTS against Zeus's policy on every shipped workload and GPU. Prints JSON.

Every policy runs in the real simulator (``bso simulate``'s trainer) against the Job
aggregate itself, held in memory (``AggregateClient``: the service's decisions without
its event store, checked equal to the application's in tests), on paired draws: the k-th run of batch size b in seed s is
the same recorded run whatever the policy did before. Regret is in oracle recurrences,
against the oracle of each recurrence (POLICY.md, DRIFT.md): the sum over recurrences of
(cost - oracle) / oracle; without drift, (cumulative cost - N x oracle cost) / oracle cost.
A recurrence that misses the target 20 times is bricked: the job goes on, and it is counted.

Without --drift, per cell (workload x GPU) and overall it prints each policy's regret, its
mean, standard deviation and 95th percentile, the ratio of the means, the paired
difference and its standard error, the jobs left with no converged batch size (the
policy gave up), the jobs with a bricked recurrence, and the energy to target against
always training with the default batch size. --no-predictive-stop runs LSTS without it (it is
LSTS's default).

With --drift SCENARIO... (DRIFT.md) it compares Zeus, Zeus with both guards and LSTS under
each scenario: jobs with a bricked recurrence, bricked recurrences and mean regret, per
cell and overall.

    python -m bench.policy --seeds 100 --recurrences 200 --processes 2
    python -m bench.policy --drift grow step-visible --processes 2
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

from application.drift import NONE, SCENARIOS
from application.simulator import (
    PAIRED_DRAWS,
    AggregateClient,
    Knobs,
    TraceSimulator,
    WorkloadTrace,
    default_baseline,
    drift_for,
    oracle_recurrence_cost,
    recurrence_oracle_costs,
    regret_in_oracle_recurrences,
)
from application.traces import Workload
from domain.errors import DomainError
from domain.spec import LSTS, ZEUS
from infrastructure.trace_data import SHIPPED_GPUS, WORKLOAD_PRESETS, Traces, shipped_power_trace, shipped_train_trace

ETA = 0.5


@cache
def cell_trace(workload_name: str, gpu: str) -> WorkloadTrace:
    """The cell's trace; the default batch size capped by the GPU's largest traced size."""
    traces = Traces.load(shipped_train_trace(), shipped_power_trace(gpu))
    preset: Workload = WORKLOAD_PRESETS[workload_name]
    largest = traces.batch_sizes(preset)[-1]
    return WorkloadTrace(traces, replace(preset, default_batch_size=min(preset.default_batch_size, largest)))


ZEUS_GUARDED = "zeus-guarded"
STATIONARY_SEEDS = 100
DRIFT_SEEDS = 50


def configurations(drifting: bool, predictive_stop: bool) -> dict[str, Knobs]:
    """The policies compared: Zeus and LSTS; under drift also Zeus with both guards of the stop
    rule. Knobs left unset are the server's defaults for the policy (LSTS: both guards on)."""
    lsts = Knobs(eta_knob=ETA, policy=LSTS, predictive_stop=None if predictive_stop else False)
    zeus = Knobs(eta_knob=ETA, policy=ZEUS)
    if not drifting:
        return {ZEUS: zeus, LSTS: lsts}
    return {ZEUS: zeus, ZEUS_GUARDED: replace(zeus, stop_window=20, bound_escalation=True), LSTS: lsts}


@cache
def cell_oracles(workload_name: str, gpu: str, scenario: str, recurrences: int) -> tuple[float, ...]:
    trace = cell_trace(workload_name, gpu)
    return tuple(recurrence_oracle_costs(trace, ETA, drift_for(trace, ETA, scenario, recurrences)))


def simulate(workload_name: str, gpu: str, seed: int, knobs: Knobs, recurrences: int, scenario: str) -> dict[str, float] | None:
    """One job of N recurrences: its cumulative cost and energy, its regret and bricked
    recurrences; None if it was left with no converged batch size (the policy gave up)."""
    trace = cell_trace(workload_name, gpu)
    simulator = TraceSimulator(trace, AggregateClient(), replace(knobs, mab_seed=seed), seed, gpu, PAIRED_DRAWS, scenario)
    try:
        result = simulator.run(recurrences, summarise=False)
    except DomainError:
        return None
    return {
        "cost": sum(run.cost for run in result.runs),
        "energy": sum(run.energy for run in result.runs),
        "regret": regret_in_oracle_recurrences(result.recurrences, list(cell_oracles(workload_name, gpu, scenario, recurrences))),
        "bricked": sum(not recurrence.converged for recurrence in result.recurrences),
    }


def one_seed(task: tuple[str, str, int, int, str, dict[str, Knobs]]) -> dict[str, Any]:
    workload_name, gpu, seed, recurrences, scenario, configs = task
    runs = {name: simulate(workload_name, gpu, seed, knobs, recurrences, scenario) for name, knobs in configs.items()}
    return {"cell": f"{workload_name}/{gpu}", "scenario": scenario, "seed": seed, **runs}


def regret_summary(jobs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """One configuration's regret and failures over a cell's jobs."""
    finished = [job[name] for job in jobs if job[name] is not None]
    values = [run["regret"] for run in finished]
    return {
        "jobs": len(jobs),
        "regret_mean": statistics.fmean(values) if values else math.nan,
        "regret_sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "regret_p95": float(np.percentile(values, 95)) if values else math.nan,
        "no_converged_jobs": len(jobs) - len(finished),
        "bricked_jobs": sum(run["bricked"] > 0 for run in finished),
        "bricked_recurrences": sum(run["bricked"] for run in finished),
    }


def summarise_cell(cell: str, jobs: list[dict[str, Any]], recurrences: int) -> dict[str, Any]:
    trace = cell_trace(*cell.split("/"))
    default_energy = default_baseline(trace, ETA)["expected_energy"]
    summary: dict[str, Any] = {"cell": cell, "seeds": len(jobs), "oracle_cost": oracle_recurrence_cost(trace, ETA)}
    for policy in (ZEUS, LSTS):
        finished = [job[policy] for job in jobs if job[policy] is not None]
        summary[policy] = {
            **regret_summary(jobs, policy),
            "energy_vs_default": statistics.fmean(run["energy"] for run in finished) / (recurrences * default_energy),
        }
    paired = [(job[LSTS]["regret"], job[ZEUS]["regret"]) for job in jobs if job[LSTS] is not None and job[ZEUS] is not None]
    differences = [l - z for l, z in paired]
    summary["ratio"] = summary[LSTS]["regret_mean"] / summary[ZEUS]["regret_mean"]
    summary["paired_difference"] = statistics.fmean(differences)
    spread = statistics.stdev(differences) if len(differences) > 1 else math.nan
    summary["paired_difference_se"] = spread / math.sqrt(len(differences))
    summary["worse_beyond_noise"] = summary["paired_difference"] > max(2 * summary["paired_difference_se"], 0.1)
    return summary


def overall(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [summary["ratio"] for summary in summaries]
    policies = (ZEUS, LSTS)
    return {
        "M": statistics.fmean(ratios),
        "worst_cell_ratio": max(ratios),
        "cells_worse_beyond_noise": [s["cell"] for s in summaries if s["worse_beyond_noise"]],
        "cells_where_lsts_p95_exceeds_zeus": [
            s["cell"] for s in summaries if s[LSTS]["regret_p95"] > s[ZEUS]["regret_p95"]
        ],
        "no_converged_jobs": {policy: sum(s[policy]["no_converged_jobs"] for s in summaries) for policy in policies},
        "bricked_jobs": {policy: sum(s[policy]["bricked_jobs"] for s in summaries) for policy in policies},
        "energy_vs_default_mean": {
            policy: statistics.fmean(s[policy]["energy_vs_default"] for s in summaries) for policy in policies
        },
    }


def table(summaries: list[dict[str, Any]]) -> str:
    lines = [
        f"{'cell':<26} {'zeus mean±sd':>16} {'lsts mean±sd':>16} {'ratio':>6} {'diff±se':>14} "
        f"{'p95 z/l':>13} {'energy z/l':>11} {'fail z/l':>8} {'brick z/l':>9}"
    ]
    for s in summaries:
        z, l = s[ZEUS], s[LSTS]
        lines.append(
            f"{s['cell']:<26} {z['regret_mean']:>8.2f}±{z['regret_sd']:<7.2f} {l['regret_mean']:>8.2f}±{l['regret_sd']:<7.2f} "
            f"{s['ratio']:>6.2f} {s['paired_difference']:>7.2f}±{s['paired_difference_se']:<6.2f} "
            f"{z['regret_p95']:>6.1f}/{l['regret_p95']:<6.1f} {z['energy_vs_default']:>5.2f}/{l['energy_vs_default']:<5.2f} "
            f"{z['no_converged_jobs']:>3}/{l['no_converged_jobs']:<3} {z['bricked_jobs']:>4}/{l['bricked_jobs']:<4}"
        )
    return "\n".join(lines)


def summarise_drift_cell(cell: str, jobs: list[dict[str, Any]], scenario: str, names: list[str], recurrences: int) -> dict[str, Any]:
    """Under one drift scenario: each configuration's bricked jobs and recurrences and regret."""
    drift = drift_for(cell_trace(*cell.split("/")), ETA, scenario, recurrences)
    return {
        "cell": cell,
        "seeds": len(jobs),
        "drift": {"g": drift.g, "b_old": drift.b_old, "b_new": drift.b_new},
        **{name: regret_summary(jobs, name) for name in names},
    }


def drift_overall(summaries: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Totals over cells; the mean regret is the mean of the cells' means."""
    return {
        name: {
            "jobs": sum(s[name]["jobs"] for s in summaries),
            "bricked_jobs": sum(s[name]["bricked_jobs"] for s in summaries),
            "bricked_recurrences": sum(s[name]["bricked_recurrences"] for s in summaries),
            "no_converged_jobs": sum(s[name]["no_converged_jobs"] for s in summaries),
            "regret_mean": statistics.fmean(s[name]["regret_mean"] for s in summaries),
        }
        for name in names
    }


def drift_table(scenario: str, summaries: list[dict[str, Any]], totals: dict[str, Any], names: list[str]) -> str:
    """Per configuration: bricked jobs / jobs, bricked recurrences, mean regret."""
    lines = [f"drift {scenario}: bricked jobs/jobs, bricked recurrences, mean regret (oracle of each recurrence)"]
    lines.append(f"{'cell':<26} {'g':>6} " + " ".join(f"{name:>28}" for name in names))
    rows = [(s["cell"], s["drift"]["g"], s) for s in summaries] + [("overall", None, totals)]
    for cell, g, figures in rows:
        columns = [
            f"{f['bricked_jobs']:>5}/{f['jobs']:<5} {f['bricked_recurrences']:>6} {f['regret_mean']:>9.2f}"
            for f in (figures[name] for name in names)
        ]
        lines.append(f"{cell:<26} {'-' if g is None else f'{g:+.2f}':>6} " + " ".join(f"{column:>28}" for column in columns))
    return "\n".join(lines)


def run_jobs(tasks: list[tuple[Any, ...]], processes: int) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every job, grouped by (scenario, cell) in task order."""
    with ProcessPoolExecutor(max_workers=processes) as pool:
        jobs = list(pool.map(one_seed, tasks, chunksize=4))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for job in jobs:
        groups.setdefault((job["scenario"], job["cell"]), []).append(job)
    return groups


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", nargs="*", default=sorted(WORKLOAD_PRESETS))
    parser.add_argument("--gpus", nargs="*", default=list(SHIPPED_GPUS))
    parser.add_argument(
        "--seeds",
        type=int,
        help=f"seeds per cell, from --first-seed (default {STATIONARY_SEEDS}, {DRIFT_SEEDS} with --drift)",
    )
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--recurrences", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--drift",
        nargs="+",
        choices=SCENARIOS,
        metavar="SCENARIO",
        help=f"compare zeus, {ZEUS_GUARDED} and lsts under these DRIFT.md scenarios ({', '.join(SCENARIOS)}); "
        "without it: LSTS against Zeus on the recorded runs",
    )
    parser.add_argument("--no-predictive-stop", dest="predictive_stop", action="store_false", help="run LSTS with predictive_stop false (its default is true)")
    args = parser.parse_args()
    scenarios = args.drift or [NONE]
    configs = configurations(args.drift is not None, args.predictive_stop)
    seeds = args.seeds or (DRIFT_SEEDS if args.drift else STATIONARY_SEEDS)
    tasks = [
        (workload, gpu, seed, args.recurrences, scenario, configs)
        for scenario in scenarios
        for workload in args.workloads
        for gpu in args.gpus
        for seed in range(args.first_seed, args.first_seed + seeds)
    ]
    started = time.perf_counter()
    groups = run_jobs(tasks, args.processes)
    results: dict[str, Any] = {}
    if args.drift is None:
        summaries = [summarise_cell(cell, jobs, args.recurrences) for (_, cell), jobs in groups.items()]
        print(table(summaries), file=sys.stderr)
        results.update(overall=overall(summaries), cells=summaries)
    else:
        names = list(configs)
        results["drift"] = {}
        for scenario in scenarios:
            summaries = [
                summarise_drift_cell(cell, jobs, scenario, names, args.recurrences)
                for (of, cell), jobs in groups.items()
                if of == scenario
            ]
            totals = drift_overall(summaries, names)
            print(drift_table(scenario, summaries, totals, names), file=sys.stderr)
            results["drift"][scenario] = {"overall": totals, "cells": summaries}
    report = {
        "command": "python -m bench.policy " + " ".join(sys.argv[1:]),
        "seconds": round(time.perf_counter() - started, 1),
        **results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
