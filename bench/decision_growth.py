"""Does the cost of a decision grow with the number of trials? Prints JSON.

One job with a single batch size and the largest allowed number of pruning rounds,
driven in process (no HTTP) for ``--pairs`` predict + final report pairs; prints the
CPU seconds of each block of 500 pairs (process time, so disk waits do not count).

    python -m bench.decision_growth --database sqlite --pairs 3000
"""

import argparse
import time
from typing import Any

from application.service import BatchSizeOptimizer
from bench.common import event_store, machine, print_json
from domain.reporting import EpochReport
from domain.spec import SpecLimits
from infrastructure.settings import persistence_env

BLOCK = 500
JOB = "growth-one-size"


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
    app.register_job(
        {
            "job_id": JOB, "job_id_prefix": "growth", "batch_sizes": [32], "default_batch_size": 32,
            "num_pruning_rounds": rounds, "max_power": 300.0, "number_of_gpus": 1, "gpu_model": "V100", "mab_seed": 1,
        }
    )
    seconds: list[float] = []
    for number in range(pairs):
        started = time.process_time()
        trial = app.predict(JOB)
        app.report(JOB, EpochReport(trial["trial_number"], 32, 10.0, 100.0 + number % 7, 0.9, 1))
        seconds.append(time.process_time() - started)
    blocks = [round(sum(seconds[start : start + BLOCK]), 3) for start in range(0, pairs, BLOCK)]
    return {"pairs": pairs, "num_pruning_rounds": rounds, "cpu_seconds_per_500_pairs": blocks}


if __name__ == "__main__":
    main()
