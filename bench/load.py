"""Load: N jobs, C concurrent simulated trainers over HTTP, then the no-op floor.

    python -m bench.load --database sqlite --jobs 50 --trials 20 --concurrency 16

Each trainer thread takes whole jobs from a queue and runs their trials one after
another (predict, a report per epoch, end trial). Then the same threads hammer the
same server's ``/healthz`` for as many requests; the ratio of the two is our
distance from the HTTP floor. Prints one JSON document. With ``--rounds N`` the
whole load runs N times on the same server (fresh jobs each round) and the document
leads with the median of the rounds: runs on a shared machine vary by +-20%.
The server's CPU time per request during the load (its processes' user + system
time over the requests served) varies less, so it is the figure to compare trees by.
"""

import argparse
import queue
import statistics
import threading
import time
from typing import Any

import httpx

from bench.common import (
    Latencies,
    Server,
    add_backend_flags,
    event_store,
    job_spec,
    machine,
    percentiles_ms,
    print_json,
    route_table,
    running_server,
    timed,
    train_one_trial,
)
from bench.raw_http import RawClient


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    add_backend_flags(parser)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--trials", type=int, default=20, help="trials per job (default 20)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent trainers (default 16)")
    parser.add_argument("--epochs-to-target", type=int, default=3, help="reports per trial (default 3)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="stop handing out work after this (s)")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load client: raw (bench/raw_http.py, light on the shared CPU; default) or httpx",
    )
    parser.add_argument("--rounds", type=int, default=1, help="run the load this many times; print their median too")
    args = parser.parse_args()
    with event_store(args.database) as database_url, running_server(database_url, args.workers) as server:
        rounds = [measure(server, args) for _ in range(max(1, args.rounds))]
        print_json(
            {
                "benchmark": "load",
                "database": args.database,
                "workers": args.workers,
                "jobs": args.jobs,
                "trials_per_job": args.trials,
                "concurrency": args.concurrency,
                "reports_per_trial": args.epochs_to_target,
                "client": args.client,
                "machine": machine(),
                **(rounds[0] if len(rounds) == 1 else {"median_of_rounds": median_of(rounds), "rounds": rounds}),
            }
        )


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median over rounds of each headline figure (each figure's own median)."""

    def median(figure: Any) -> float:
        return round(statistics.median(figure(measured) for measured in rounds), 3)

    return {
        "throughput_rps": median(lambda r: r["throughput_rps"]),
        "server_cpu_ms_per_request": median(lambda r: r["server_cpu_ms_per_request"]),
        "all_routes": {key: median(lambda r: r["all_routes"][key]) for key in ("p50_ms", "p95_ms", "p99_ms")},
        "routes": {
            route: {key: median(lambda r: r["routes"][route][key]) for key in ("p50_ms", "p99_ms")}
            for route in rounds[0]["routes"]
        },
        "errors": sum(sum(table["errors_by_status"].values()) for r in rounds for table in r["routes"].values()),
        "healthz_throughput_rps": median(lambda r: r["healthz"]["throughput_rps"]),
        "ratio_to_healthz_throughput": median(lambda r: r["ratio_to_healthz"]["throughput"]),
    }


def measure(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    url = server.url
    client = RawClient if args.client == "raw" else httpx.Client
    with httpx.Client(base_url=url, timeout=60.0) as http:
        job_ids = [
            http.post("/jobs", json=job_spec("load", max_epochs=10, seed=number)).json()["job_id"]
            for number in range(args.jobs)
        ]
    work: queue.Queue[str] = queue.Queue()
    for job_id in job_ids:
        work.put(job_id)
    deadline = time.monotonic() + args.time_limit
    results = [route_table() for _ in range(args.concurrency)]

    def trainer(routes: dict[str, Latencies]) -> None:
        with client(base_url=url, timeout=60.0) as http:
            while time.monotonic() < deadline:
                try:
                    job_id = work.get_nowait()
                except queue.Empty:
                    return
                for _ in range(args.trials):
                    train_one_trial(http, job_id, routes, args.epochs_to_target)

    cpu_before = server.cpu_seconds()
    load_seconds = _in_threads(trainer, results)
    server_cpu_seconds = server.cpu_seconds() - cpu_before
    routes = route_table()
    for table in results:
        for route, latencies in table.items():
            routes[route].merge(latencies)
    total = sum(len(latencies.samples) for latencies in routes.values())

    floor = [Latencies() for _ in range(args.concurrency)]
    per_thread = max(1, total // args.concurrency)

    def prober(latencies: Latencies) -> None:
        with client(base_url=url, timeout=60.0) as http:
            for _ in range(per_thread):
                timed(latencies, http.get, "/healthz")

    floor_seconds = _in_threads(prober, floor)
    healthz = Latencies()
    for latencies in floor:
        healthz.merge(latencies)
    throughput = total / load_seconds
    floor_throughput = len(healthz.samples) / floor_seconds
    all_samples = [s for latencies in routes.values() for s in latencies.samples]
    return {
        "work_done": work.empty(),
        "requests": total,
        "seconds": round(load_seconds, 3),
        "throughput_rps": round(throughput, 1),
        "server_cpu_ms_per_request": round(server_cpu_seconds / total * 1000, 3) if total else None,
        "all_routes": percentiles_ms(all_samples),
        "routes": {route: latencies.summary() for route, latencies in routes.items()},
        "healthz": {
            **healthz.summary(),
            "seconds": round(floor_seconds, 3),
            "throughput_rps": round(floor_throughput, 1),
        },
        "ratio_to_healthz": {
            "throughput": round(throughput / floor_throughput, 3),
            "p50": _ratio(percentiles_ms(all_samples), healthz.summary(), "p50_ms"),
            "p99": _ratio(percentiles_ms(all_samples), healthz.summary(), "p99_ms"),
        },
    }


def _ratio(ours: dict[str, Any], floor: dict[str, Any], key: str) -> float | None:
    if not floor.get(key):
        return None
    return round(ours[key] / floor[key], 2)


def _in_threads(target: Any, arguments: list[Any]) -> float:
    threads = [threading.Thread(target=target, args=(argument,)) for argument in arguments]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
