"""Multi-process hammer: several ``bso serve --workers N`` on one database, many trainers.

32 trainers share one hot job and 32 more are spread over 8 jobs; every request goes
to a randomly chosen server, so consecutive commands on a job run in different
processes. Afterwards the event log is checked against what clients were told:

- per job, the trial numbers handed out are unique and gap-free (1..N, N = trials in the log);
- every acknowledged report is in the log, and the log holds no report nobody sent;
- no 5xx;
- each job's state as the service loads it equals a replay of all its events from version 1.

Run from the repository root (prints JSON figures)::

    python -m bench.hammer --database sqlite
    python -m bench.hammer --database postgres --cycles 8
"""

import argparse
import contextlib
import json
import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import httpx
from prometheus_client.parser import text_string_to_metric_families

from application.service import BatchSizeOptimizer
from bench.common import event_store, machine, running_server
from domain.job import Job
from infrastructure.settings import persistence_env

HOT_TRAINERS = 32
SPREAD_TRAINERS = 32
SPREAD_JOBS = 8
MAX_EPOCHS = 3
REQUEST_TIMEOUT_SECONDS = 60.0


def job_spec(job_id: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "job_id_prefix": job_id.split("-")[0],
        "batch_sizes": [16, 32, 64, 128],
        "default_batch_size": 32,
        "max_epochs": MAX_EPOCHS,
        "mab_seed": 7,
        "max_power": 300,
        "number_of_gpus": 1,
        "gpu_model": "V100",
    }


def measurements(batch_size: int, epoch: int) -> dict[str, float]:
    """Cumulative time and energy after ``epoch`` epochs; the target is met at the second."""
    seconds = (5.0 + 320.0 / batch_size) * epoch
    return {"time": seconds, "energy": 150.0 * seconds, "metric": 0.9 if epoch >= 2 else 0.1, "current_epoch": epoch}


@dataclass
class Ledger:
    """What clients were told, shared by all trainer threads."""

    trials: dict[str, list[int]] = field(default_factory=dict)
    acknowledged: set[tuple[str, int, int, bool]] = field(default_factory=set)  # job, trial, epoch, final
    finished: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)  # final answers
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError:
            with self.lock:
                self.statuses["transport_error"] += 1
            return None
        with self.lock:
            self.latencies.append(time.perf_counter() - started)
            self.statuses[str(response.status_code)] += 1
            if response.status_code >= 500:
                self.failures.append(f"{method} {url}: {response.status_code} {response.text[:200]}")
        return response


def trainer(urls: list[str], job_id: str, cycles: int, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    """Predict, report epoch by epoch until told to stop, sometimes PATCH; ``cycles`` times."""
    choose = random.Random(seed)
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        for cycle in range(cycles):
            if stop.is_set():
                return
            response = ledger.request(client, "GET", f"{choose.choice(urls)}/jobs/batch_size", params={"job_id": job_id})
            if response is None or response.status_code != 200:
                continue
            trial = response.json()
            with ledger.lock:
                ledger.trials.setdefault(job_id, []).append(trial["trial_number"])
            for epoch in range(1, MAX_EPOCHS + 1):
                body = {**trial, **measurements(trial["batch_size"], epoch)}
                answer = ledger.request(client, "POST", f"{choose.choice(urls)}/report", content=json.dumps(body))
                if answer is None or answer.status_code != 200:
                    break
                verdict = answer.json()
                with ledger.lock:
                    ledger.acknowledged.add((job_id, trial["trial_number"], epoch, verdict["stop_train"]))
                    if verdict["stop_train"]:
                        ledger.finished[(job_id, trial["trial_number"])] = {**body, "answer": verdict}
                if verdict["stop_train"]:
                    break
            if cycle % 2 == 1:  # Zeus's client PATCHes at exit: a no-op after the final report
                ledger.request(client, "PATCH", f"{choose.choice(urls)}/trials", content=json.dumps(trial))


def drive(urls: list[str], cycles: int, deadline_seconds: float = 600.0) -> tuple[Ledger, dict[str, Any]]:
    """Register the jobs, run every trainer to the end (bounded), return the ledger and figures."""
    run = secrets.token_hex(3)  # fresh job ids, so a database can be hammered again
    jobs = [f"hot-{run}", *(f"spread-{run}-{index}" for index in range(SPREAD_JOBS))]
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        for job_id in jobs:
            response = client.post(f"{urls[0]}/jobs", content=json.dumps(job_spec(job_id)))
            response.raise_for_status()
    assignments = [jobs[0]] * HOT_TRAINERS + [jobs[1 + index % SPREAD_JOBS] for index in range(SPREAD_TRAINERS)]
    ledger, stop = Ledger(), threading.Event()
    threads = [
        threading.Thread(target=trainer, args=(urls, job_id, cycles, ledger, stop, seed), daemon=True)
        for seed, job_id in enumerate(assignments)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    end = started + deadline_seconds
    for thread in threads:
        thread.join(timeout=max(0.0, end - time.perf_counter()))
    stop.set()
    elapsed = time.perf_counter() - started
    if any(thread.is_alive() for thread in threads):
        ledger.failures.append(f"trainers still running after {deadline_seconds:.0f} s")
    requests = len(ledger.latencies) + ledger.statuses.get("transport_error", 0)
    figures = {
        "trainers": len(threads),
        "jobs": len(jobs),
        "cycles_per_trainer": cycles,
        "requests": requests,
        "responses_by_status": dict(sorted(ledger.statuses.items())),
        "status_409": ledger.statuses.get("409", 0),
        "status_5xx": sum(count for status, count in ledger.statuses.items() if status.startswith("5")),
        "seconds": round(elapsed, 2),
        "throughput_rps": round(requests / elapsed, 1) if elapsed else None,
        **latency_percentiles(ledger.latencies),
    }
    return ledger, figures


def latency_percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {}
    return {
        f"latency_p{int(q * 100)}_ms": round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)
        for q in (0.5, 0.95, 0.99)
    }


def scrape_conflicts(urls: list[str]) -> dict[str, Any]:
    """Sum the conflict counters of every server; one scrape of a server covers all its workers."""
    scraped = [_metric_values(httpx.get(f"{url}/metrics", timeout=5.0).text) for url in urls]
    return {
        "commands": sum(values.get("bso_commands_total", 0) for values in scraped),
        "conflicts_retried": sum(values.get("bso_conflicts_retried_total", 0) for values in scraped),
        "max_retries_needed": max((values.get("bso_command_max_retries", 0) for values in scraped), default=0),
        "commands_gave_up": sum(values.get("bso_commands_gave_up_total", 0) for values in scraped),
    }


def _metric_values(text: str) -> dict[str, int]:
    """The unlabelled samples of a Prometheus text page, by name."""
    return {
        sample.name: int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def verify(database_url: str, ledger: Ledger, *, crashed: bool = False) -> list[str]:
    """Every way the event log could disagree with what clients were told, as messages.

    After a crash, requests cut off in flight may have been committed without an
    answer: then the log may hold more than clients were told, never less.
    """
    problems = list(ledger.failures)
    if not crashed and ledger.statuses.get("transport_error"):
        problems.append(f"{ledger.statuses['transport_error']} requests got no answer")
    app = BatchSizeOptimizer(env=persistence_env(database_url, create_schema=False))
    try:
        for job_id, handed_out in sorted(ledger.trials.items()):
            job = app.live_job(job_id)
            numbers = sorted(handed_out)
            logged_numbers = list(range(1, job.trial_count + 1))
            if len(set(numbers)) != len(numbers) or not set(numbers) <= set(logged_numbers):
                problems.append(f"{job_id}: trial numbers handed out {numbers} are not unique trials of the log")
            if not crashed and numbers != logged_numbers:
                problems.append(f"{job_id}: trial numbers {numbers} vs {job.trial_count} trials in the log")
            events = list(app.events.get(job.id))
            logged = set(_logged_reports(job_id, events))
            acknowledged = {entry for entry in ledger.acknowledged if entry[0] == job_id}
            if not acknowledged <= logged:
                problems.append(f"{job_id}: acknowledged reports missing from the log: {sorted(acknowledged - logged)[:5]}")
            if not crashed and logged - acknowledged:
                problems.append(f"{job_id}: reports in the log nobody was told about: {sorted(logged - acknowledged)[:5]}")
            replayed = replay(events)
            if _state(replayed) != _state(job):
                problems.append(f"{job_id}: the state the service loads differs from a replay of its events")
    finally:
        app.close()
    return problems


def replay(events: list[Any]) -> Job:
    """The aggregate rebuilt from every event since version 1, without snapshots or caches."""
    job = None
    for event in events:
        job = event.mutate(job)
    assert isinstance(job, Job)
    return job


def _logged_reports(job_id: str, events: list[Any]) -> Iterator[tuple[str, int, int, bool]]:
    for event in events:
        if isinstance(event, Job.TrialProgressReported):
            yield job_id, event.number, event.epoch, False
        elif isinstance(event, Job.TrialReported):
            yield job_id, event.number, event.epoch, True


def _state(job: Job) -> dict[str, Any]:
    return dict(vars(job))


def run(database: str, servers: int, workers: int, cycles: int) -> dict[str, Any]:
    with event_store(database) as database_url, _servers(database_url, servers, workers) as urls:
        ledger, figures = drive(urls, cycles)
        figures.update(scrape_conflicts(urls))
        problems = verify(database_url, ledger)
    backend = database_url.split(":", 1)[0]
    return {
        "backend": backend,
        "servers": servers,
        "workers_per_server": workers,
        **figures,
        "trials_dispatched": sum(len(numbers) for numbers in ledger.trials.values()),
        "reports_acknowledged": len(ledger.acknowledged),
        "invariants_hold": not problems,
        "problems": problems,
        "machine": machine(),
    }


@contextlib.contextmanager
def _servers(database_url: str, count: int, workers: int) -> Iterator[list[str]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(running_server(database_url, workers)).url for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres, or a database URL (default sqlite)")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="worker processes per server (default 2)")
    parser.add_argument("--cycles", type=int, default=6, help="predict/report cycles per trainer (default 6)")
    args = parser.parse_args()
    print(json.dumps(run(args.database, args.servers, args.workers, args.cycles), indent=2))


if __name__ == "__main__":
    main()
