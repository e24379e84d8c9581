"""Does the cost of a decision grow with the number of trials? Prints JSON.

One job with a single batch size and the largest allowed number of pruning rounds,
driven in process (no HTTP) for ``--pairs`` predict + final report pairs; prints the
CPU seconds of each block of 500 pairs (process time, so disk waits do not count).
Then it alternates pairs between that job and a young one (past its pruning stage, a
few dozen trials) in the same store, and prints the median CPU time of a pair on each
and their ratio: alternating makes both meet the same drift of a shared machine.

    python -m bench.decision_growth --database sqlite --pairs 10000
"""

import argparse
import statistics
import time
from typing import Any

from application.service import BatchSizeOptimizer
from bench.common import event_store, machine, print_json
from domain.reporting import EpochReport
from domain.spec import SpecLimits
from infrastructure.settings import persistence_env

BLOCK = 500
OLD_JOB, YOUNG_JOB = "growth-one-size", "growth-young"
YOUNG_PAIRS = 50
ALTERNATING_PAIRS = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres or a database URL (default sqlite)")
    parser.add_argument("--pairs", type=int, default=3000)
    args = parser.parse_args()
    with event_store(args.database) as url:
        app = BatchSizeOptimizer(env=persistence_env(url))
        try:
            print_json({"benchmark": "decision_growth", "database": args.database, **run(app, args.pairs), "machine": machine()})
        finally:
            app.close()


def run(app: BatchSizeOptimizer, pairs: int) -> dict[str, Any]:
    rounds = SpecLimits().num_pruning_rounds
    for job_id in (OLD_JOB, YOUNG_JOB):
        register(app, job_id, rounds)
    seconds = [timed_pair(app, OLD_JOB, number) for number in range(pairs)]
    blocks = [round(sum(seconds[start : start + BLOCK]), 3) for start in range(0, pairs, BLOCK)]
    for number in range(YOUNG_PAIRS):
        timed_pair(app, YOUNG_JOB, number)
    alternating: dict[str, list[float]] = {OLD_JOB: [], YOUNG_JOB: []}
    for number in range(ALTERNATING_PAIRS):
        order = (OLD_JOB, YOUNG_JOB) if number % 2 else (YOUNG_JOB, OLD_JOB)
        for job_id in order:
            alternating[job_id].append(timed_pair(app, job_id, pairs + number))
    old, young = (statistics.median(alternating[job_id]) for job_id in (OLD_JOB, YOUNG_JOB))
    old_mean, young_mean = (statistics.mean(alternating[job_id]) for job_id in (OLD_JOB, YOUNG_JOB))
    return {
        "pairs": pairs,
        "num_pruning_rounds": rounds,
        "cpu_seconds_per_500_pairs": blocks,
        "alternating": {
            "pairs_each": ALTERNATING_PAIRS,
            "old_job_trials_at_start": pairs,
            "young_job_trials_at_start": YOUNG_PAIRS,
            "median_cpu_ms_per_pair_old_job": round(old * 1e3, 3),
            "median_cpu_ms_per_pair_young_job": round(young * 1e3, 3),
            "median_old_over_young": round(old / young, 3),
            # The mean carries the snapshots too (one per 200 events, bigger for the old job).
            "mean_cpu_ms_per_pair_old_job": round(old_mean * 1e3, 3),
            "mean_cpu_ms_per_pair_young_job": round(young_mean * 1e3, 3),
            "mean_old_over_young": round(old_mean / young_mean, 3),
        },
    }


def register(app: BatchSizeOptimizer, job_id: str, rounds: int) -> None:
    app.register_job(
        {
            "job_id": job_id, "job_id_prefix": "growth", "batch_sizes": [32], "default_batch_size": 32,
            "num_pruning_rounds": rounds, "max_power": 300.0, "number_of_gpus": 1, "gpu_model": "V100", "mab_seed": 1,
        }
    )


def timed_pair(app: BatchSizeOptimizer, job_id: str, number: int) -> float:
    """CPU seconds of one predict and its final report."""
    started = time.process_time()
    trial = app.predict(job_id)
    app.report(job_id, EpochReport(trial["trial_number"], 32, 10.0, 100.0 + number % 7, 0.9, 1))
    return time.process_time() - started


if __name__ == "__main__":
    main()
