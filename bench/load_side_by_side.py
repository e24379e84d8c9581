"""Two checkouts under the same load at the same time, to compare their cost. Prints JSON.

    git worktree add /tmp/before d622bb2
    python -m bench.load_side_by_side /tmp/before . --iterations 3

Each iteration runs ``python -m bench.load`` (its own server on its own store, SQLite
by default, and its own load client) in both directories at once for ``--seconds``,
so that both meet the same moment of a shared machine: one after the other, runs here
drift by 10-15%, while side by side the ratio of the two moves by a few percent. The bench modules of this
checkout are copied over the other's first, so both are measured the same way.
Prints each iteration's throughput and server CPU per request, and the medians of
the ratios (second / first).
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import machine, print_json

HERE = Path(__file__).resolve().parent
SHARED_MODULES = ("common.py", "load.py", "raw_http.py")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load_side_by_side", description=__doc__.split("\n")[0])
    parser.add_argument("first", type=Path, help="a checkout of this project (the baseline)")
    parser.add_argument("second", type=Path, help="another checkout (compared with the first)")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=25.0, help="load time per iteration (default 25)")
    parser.add_argument(
        "--database", choices=["sqlite", "postgres"], default="sqlite",
        help="each side's store: a fresh SQLite file or its own throw-away PostgreSQL (default sqlite)",
    )
    parser.add_argument("--workers", type=int, default=1, help="bso serve worker processes per side (default 1)")
    args = parser.parse_args()
    checkouts = [args.first.resolve(), args.second.resolve()]
    for checkout in checkouts:
        if checkout != HERE.parent:
            for name in SHARED_MODULES:
                shutil.copy(HERE / name, checkout / "bench" / name)
    iterations = [run_both(checkouts, args) for _ in range(max(1, args.iterations))]
    print_json(
        {
            "benchmark": "load_side_by_side",
            "first": str(checkouts[0]),
            "second": str(checkouts[1]),
            "database": args.database,
            "workers": args.workers,
            "iterations": iterations,
            "median_throughput_ratio": median_ratio(iterations, "throughput_rps"),
            "median_server_cpu_per_request_ratio": median_ratio(iterations, "server_cpu_ms_per_request"),
            "machine": machine(),
        }
    )


def run_both(checkouts: list[Path], args: argparse.Namespace) -> list[dict[str, Any]]:
    # Enough jobs that neither side runs out of work before the time is up.
    command = [
        sys.executable, "-m", "bench.load", "--database", args.database, "--workers", str(args.workers),
        "--jobs", "400", "--time-limit", str(args.seconds),
    ]
    runs = [subprocess.Popen(command, cwd=checkout, stdout=subprocess.PIPE, text=True) for checkout in checkouts]
    results = []
    for run in runs:
        output, _ = run.communicate(timeout=600)
        if run.returncode != 0:
            raise SystemExit(f"bench.load failed with status {run.returncode}")
        measured = json.loads(output)
        results.append({key: measured[key] for key in ("requests", "seconds", "throughput_rps", "server_cpu_ms_per_request")})
    return results


def median_ratio(iterations: list[list[dict[str, Any]]], key: str) -> float:
    return round(statistics.median(second[key] / first[key] for first, second in iterations), 3)


if __name__ == "__main__":
    main()
