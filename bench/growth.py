"""History growth: one job through 10,000 trials over HTTP; does a long history slow it down?

    python -m bench.growth --database sqlite --trials 10000

One trainer runs the job's trials back to back (predict, one final report, end
trial). At trials 10, 100, 1,000 and 10,000 it prints the median predict and report
latency of the trials just before, the ratio of the last to the first (target: no
more than 1.5), and the server's resident memory at the end.
"""

import argparse
import json
import statistics
import time

import httpx

from bench.common import (
    Latencies,
    add_backend_flags,
    epoch_measurements,
    event_store,
    job_spec,
    machine,
    print_json,
    running_server,
    timed,
)

WINDOW = 9  # trials per checkpoint: the median of the 9 trials ending at it


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__.split("\n\n")[0])
    add_backend_flags(parser)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--time-limit", type=float, default=1200.0, help="stop early after this (s)")
    args = parser.parse_args()
    checkpoints = [point for point in (10, 100, 1_000, 10_000) if point <= args.trials]
    if args.trials not in checkpoints:
        checkpoints.append(args.trials)
    with event_store(args.database) as database_url, running_server(database_url, args.workers) as server:
        predict, report, done, seconds = grow(server.url, args.trials, args.time_limit)
        rss = server.resident_memory_bytes()
    table = {
        str(point): {
            "predict_ms": _median_ms(predict, point),
            "report_ms": _median_ms(report, point),
        }
        for point in checkpoints
        if point <= done
    }
    first, last = table[str(checkpoints[0])], table[str(max(point for point in checkpoints if point <= done))]
    print_json(
        {
            "benchmark": "history_growth",
            "database": args.database,
            "trials_done": done,
            "seconds": round(seconds, 1),
            "machine": machine(),
            "median_latency_at_trial": table,
            "last_over_first": {
                "predict": round(last["predict_ms"] / first["predict_ms"], 2),
                "report": round(last["report_ms"] / first["report_ms"], 2),
            },
            "server_rss_mib_after": round(rss / 2**20, 1),
        }
    )


def grow(url: str, trials: int, time_limit: float) -> tuple[list[float], list[float], int, float]:
    """Per-trial predict and report seconds, how many trials ran, and how long it took."""
    predict, report = Latencies(), Latencies()
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60.0) as http:
        job_id = http.post("/jobs", json=job_spec("growth", max_epochs=10, seed=1)).json()["job_id"]
        for _ in range(trials):
            if time.perf_counter() - started > time_limit:
                break
            answer = timed(predict, http.get, "/jobs/batch_size", params={"job_id": job_id}).json()
            seconds, joules = epoch_measurements(answer["batch_size"], 3)
            body = {**answer, "time": seconds, "energy": joules, "metric": 0.6, "current_epoch": 3}
            timed(report, http.post, "/report", content=json.dumps(body))
            http.patch("/trials", content=json.dumps(answer))
    if predict.errors or report.errors:
        raise RuntimeError(f"errors during the growth run: predict {predict.errors}, report {report.errors}")
    return predict.samples, report.samples, len(report.samples), time.perf_counter() - started


def _median_ms(samples: list[float], point: int) -> float:
    window = samples[max(0, point - WINDOW) : point]
    return round(statistics.median(window) * 1000, 3)


if __name__ == "__main__":
    main()
