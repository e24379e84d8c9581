"""What the benchmarks share: a throw-away event store, a real ``bso serve``, timing, output.

Everything listens on 127.0.0.1 only; every process started here is stopped by its
PID when the benchmark ends, whatever happens.
"""

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx

from tests import pgserver

READY_TIMEOUT_SECONDS = 60.0


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        default="sqlite",
        help="sqlite (a fresh file), postgres (a throw-away PostgreSQL 15 server on a loopback "
        "port), or a database URL (default sqlite)",
    )
    parser.add_argument("--workers", type=int, default=1, help="bso serve worker processes (default 1)")


@contextlib.contextmanager
def event_store(database: str) -> Iterator[str]:
    """A database URL for a fresh, empty event store, removed afterwards."""
    if database not in ("sqlite", "postgres"):
        yield database
        return
    # The PostgreSQL cluster directory itself is the scratch folder: pgserver hands it
    # to the postgres user, who could not enter a root-only parent folder.
    scratch = pgserver.temporary_data_dir()
    try:
        if database == "sqlite":
            yield f"sqlite:///{scratch / 'bench.db'}"
        else:
            try:
                yield pgserver.start(scratch, pgserver.free_port())
            finally:
                pgserver.stop(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    def resident_memory_bytes(self) -> int:
        """Resident memory of the server and its worker processes (Linux /proc)."""
        return sum(_rss_bytes(pid) for pid in [self.process.pid, *_children(self.process.pid)])

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server and its worker processes have used (Linux /proc)."""
        return sum(_cpu_seconds(pid) for pid in [self.process.pid, *_children(self.process.pid)])


@contextlib.contextmanager
def running_server(database_url: str, workers: int = 1) -> Iterator[Server]:
    """``bso serve`` on a free loopback port, ready (``/readyz`` answered 200), stopped by PID."""
    port = free_port()
    environ = {**os.environ, "BSO_LOG_LEVEL": "warning"}
    command = [
        sys.executable, "-m", "api.cli", "serve",
        "--host", "127.0.0.1", "--port", str(port),
        "--database-url", database_url, "--workers", str(workers),
    ]
    process = subprocess.Popen(command, env=environ, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process)
        yield Server(url, process)
    finally:
        _stop(process)


def _wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bso serve exited with status {process.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/readyz", timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"bso serve was not ready within {READY_TIMEOUT_SECONDS:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    # The server runs in its own session: signal its group, so uvicorn's workers stop too.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            for child in map(int, text):
                found.extend([child, *_children(child)])
    return found


def _rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError):
        # Fields after the command name, which may hold spaces: utime and stime are 14th and 15th.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


@dataclass
class Latencies:
    """Seconds per request, and error counts by status, for one route."""

    samples: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, seconds: float, status: int) -> None:
        self.samples.append(seconds)
        if status >= 400:
            self.errors[str(status)] = self.errors.get(str(status), 0) + 1

    def merge(self, other: "Latencies") -> None:
        self.samples.extend(other.samples)
        for status, count in other.errors.items():
            self.errors[status] = self.errors.get(status, 0) + count

    def summary(self) -> dict[str, Any]:
        return {"requests": len(self.samples), **percentiles_ms(self.samples), "errors_by_status": self.errors}


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 3)

    return {
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def machine() -> dict[str, Any]:
    memory_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def job_spec(prefix: str, max_epochs: int, seed: int) -> dict[str, Any]:
    """A job as a trainer registers it: four sizes, early stopping on, seeded bandit."""
    return {
        "job_id_prefix": prefix,
        "batch_sizes": [8, 16, 32, 64],
        "default_batch_size": 32,
        "eta_knob": 0.5,
        "beta_knob": 2.0,
        "target_metric": 0.5,
        "max_epochs": max_epochs,
        "mab_seed": seed,
        "max_power": 300.0,
        "number_of_gpus": 1,
        "gpu_model": "V100",
    }


def epoch_measurements(batch_size: int, epoch: int) -> tuple[float, float]:
    """Cumulative (time, energy) after ``epoch`` epochs: smaller sizes are slower here."""
    seconds_per_epoch = 10.0 + 640.0 / batch_size
    return seconds_per_epoch * epoch, seconds_per_epoch * epoch * 200.0


def print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, indent=2))


def timed(stats: Latencies, send: Any, *args: Any, **kwargs: Any) -> httpx.Response:
    started = time.perf_counter()
    response = send(*args, **kwargs)
    stats.add(time.perf_counter() - started, response.status_code)
    return response


def train_one_trial(
    http: httpx.Client, job_id: str, routes: dict[str, Latencies], epochs_to_target: int
) -> int:
    """One trial as Zeus's client runs it: predict, a report per epoch until told to stop, end.

    Returns the number of requests sent. The metric reaches the target at
    ``epochs_to_target``; bodies go without a Content-Type, as Zeus's client sends them.
    """
    answer = timed(routes["GET /jobs/batch_size"], http.get, "/jobs/batch_size", params={"job_id": job_id})
    if answer.status_code != 200:
        return 1
    trial = answer.json()
    sent = 1
    for epoch in range(1, 1000):
        seconds, joules = epoch_measurements(trial["batch_size"], epoch)
        body = {
            "job_id": job_id,
            "batch_size": trial["batch_size"],
            "trial_number": trial["trial_number"],
            "time": seconds,
            "energy": joules,
            "metric": 0.6 if epoch >= epochs_to_target else 0.1 * epoch,
            "current_epoch": epoch,
        }
        report = timed(routes["POST /report"], http.post, "/report", content=json.dumps(body))
        sent += 1
        if report.status_code != 200 or report.json()["stop_train"]:
            break
    trial_id = {key: trial[key] for key in ("job_id", "batch_size", "trial_number")}
    timed(routes["PATCH /trials"], http.patch, "/trials", content=json.dumps(trial_id))
    return sent + 1


def route_table() -> dict[str, Latencies]:
    return {route: Latencies() for route in ("GET /jobs/batch_size", "POST /report", "PATCH /trials")}
