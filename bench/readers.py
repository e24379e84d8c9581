"""Readers against trainers: does reading the heaviest job slow other jobs' trainers down?

    python -m bench.readers --database sqlite --batch-sizes 64 --history 300

Registers the largest job allowed (``--batch-sizes`` sizes, every size a bandit arm
from the start) and gives it ``--history`` trials, then runs the standard load
(``bench.load``: 16 trainers on 50 fresh jobs) twice on the same server: alone, and
with ``--readers`` threads looping over that job's heaviest views (the full trial
list a page of 1,000 at a time, a trial's detail, a page of 1,000 events, its state).
Prints one JSON document with the trainers' predict p50/p99 both ways and their ratio.
"""

import argparse
import itertools
import json
import threading
from typing import Any

import httpx

from bench.common import Latencies, add_backend_flags, event_store, machine, print_json, running_server, timed
from bench.load import measure
from bench.raw_http import RawClient

PREDICT = "GET /jobs/batch_size"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.readers", description=__doc__.split("\n\n")[0])
    add_backend_flags(parser)
    parser.add_argument("--batch-sizes", type=int, default=64, help="sizes of the read job (default 64, the cap)")
    parser.add_argument("--history", type=int, default=300, help="trials of the read job (default 300)")
    parser.add_argument("--readers", type=int, default=4, help="reader threads (default 4)")
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    load = argparse.Namespace(
        jobs=args.jobs, trials=args.trials, concurrency=args.concurrency, epochs_to_target=3, time_limit=600.0,
        client="raw",
    )
    with event_store(args.database) as database_url, running_server(database_url, args.workers) as server:
        job_id = heavy_job(server.url, args.batch_sizes, args.history)
        alone = measure(server, load)
        with Readers(server.url, job_id, args.readers, args.history) as readers:
            with_readers = measure(server, load)
        alone_p99, read_p99 = alone["routes"][PREDICT]["p99_ms"], with_readers["routes"][PREDICT]["p99_ms"]
        print_json(
            {
                "benchmark": "readers",
                "database": args.database,
                "workers": args.workers,
                "read_job": {"batch_sizes": args.batch_sizes, "trials": args.history},
                "readers": args.readers,
                "reads_done": readers.stats.summary(),
                "predict_alone": _predict(alone),
                "predict_with_readers": _predict(with_readers),
                "predict_p99_ratio": round(read_p99 / alone_p99, 2),
                "throughput_alone_rps": alone["throughput_rps"],
                "throughput_with_readers_rps": with_readers["throughput_rps"],
                "server_rss_mib": round(server.resident_memory_bytes() / 2**20, 1),
                "machine": machine(),
            }
        )


def _predict(measured: dict[str, Any]) -> dict[str, Any]:
    route = measured["routes"][PREDICT]
    return {key: route[key] for key in ("requests", "p50_ms", "p99_ms", "errors_by_status")}


def heavy_job(url: str, batch_sizes: int, trials: int) -> str:
    """A job with ``batch_sizes`` sizes straight in the bandit stage, and ``trials`` finished trials."""
    sizes = [8 * (number + 1) for number in range(batch_sizes)]
    spec = {
        "job_id_prefix": "heavy", "batch_sizes": sizes, "default_batch_size": sizes[0], "num_pruning_rounds": 0,
        "mab_num_explorations": 1, "max_epochs": 3, "mab_seed": 1, "max_power": 300, "number_of_gpus": 1,
        "gpu_model": "V100",
    }
    with httpx.Client(base_url=url, timeout=60.0) as http:
        answer = http.post("/jobs", content=json.dumps(spec))
        answer.raise_for_status()
        job_id = answer.json()["job_id"]
        for _ in range(trials):
            trial = http.get("/jobs/batch_size", params={"job_id": job_id}).json()
            report = {**trial, "time": 100.0 + trial["batch_size"], "energy": 1e4, "metric": 0.9, "current_epoch": 1}
            http.post("/report", content=json.dumps(report)).raise_for_status()
    return job_id


class Readers:
    """Threads reading the job's heaviest views in a loop until the block ends."""

    def __init__(self, url: str, job_id: str, count: int, trials: int) -> None:
        self.url, self.job_id, self.trials = url, job_id, trials
        self.stats = Latencies()
        self._stop = threading.Event()
        self._per_thread = [Latencies() for _ in range(count)]
        self._threads = [threading.Thread(target=self._read, args=(stats,)) for stats in self._per_thread]

    def __enter__(self) -> "Readers":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for stats in self._per_thread:
            self.stats.merge(stats)

    def _read(self, stats: Latencies) -> None:
        base = f"/v1/jobs/{self.job_id}"
        paths = itertools.cycle(
            [f"{base}/trials?limit=1000", f"{base}/trials/{self.trials}", f"{base}/events?limit=1000", base]
        )
        with RawClient(base_url=self.url, timeout=60.0) as http:
            while not self._stop.is_set():
                timed(stats, http.get, next(paths))


if __name__ == "__main__":
    main()
