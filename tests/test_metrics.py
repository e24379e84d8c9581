"""``GET /metrics``: prometheus-client metrics, one scrape for every worker of a server."""

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from api.http.app import create_app
from infrastructure.settings import Settings
from tests.servers import running_server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

SPEC = {
    "job_id": "metrics-1",
    "job_id_prefix": "metrics",
    "batch_sizes": [16, 32, 64],
    "default_batch_size": 32,
    "max_epochs": 3,
    "target_metric": 0.5,
    "max_power": 300,
    "number_of_gpus": 1,
    "gpu_model": "V100",
    "mab_seed": 3,
}


def samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: Samples, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def report(client: TestClient, trial: dict[str, Any], epoch: int, energy: float, metric: float) -> dict[str, Any]:
    body = {**trial, "time": 10.0, "energy": energy, "metric": metric, "current_epoch": epoch}
    response = client.post("/report", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_one_app_counts_commands_trials_by_outcome_routes_and_jobs_by_stage(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'metrics.db'}", trial_lease_seconds=0.5)
    with TestClient(create_app(settings)) as client:
        before = samples(client.get("/metrics").text)
        assert client.post("/jobs", json=SPEC).status_code == 201

        def predict() -> dict[str, Any]:
            trial = client.get("/jobs/batch_size", params={"job_id": "metrics-1"}).json()
            return {key: trial[key] for key in ("job_id", "batch_size", "trial_number")}

        assert report(client, predict(), 1, 100.0, 0.9)["converged"]
        assert "cost upper bound" in report(client, predict(), 1, 1e7, 0.1)["message"]
        assert client.patch("/trials", json=predict()).status_code == 200
        assert "max_epoch" in report(client, predict(), 3, 300.0, 0.1)["message"]
        predict()  # left silent: expired by the next command once the lease is over
        time.sleep(0.6)
        predict()
        assert client.get("/v1/jobs/metrics-1/trials/99").status_code == 404
        assert client.get("/no/such/path-with-secret-id").status_code == 404
        assert client.request("BREW-COFFEE", "/jobs").status_code == 405
        assert client.post("/v1/jobs/metrics-1/reanalysis", json={"eta_knob": 0.9}).status_code == 200
        after = samples(client.get("/metrics").text)

    finished = "bso_trials_finished_total"
    for outcome in ("converged", "cost_bound", "ended", "not_converged", "expired"):
        assert delta(before, after, finished, outcome=outcome) == 1, outcome
    dispatched = sum(
        delta(before, after, "bso_trials_dispatched_total", kind=kind) for kind in ("exploration", "concurrent", "bandit")
    )
    assert dispatched == 6
    # register, 6 predicts, 3 reports, 1 PATCH; the append histogram saw every save
    assert delta(before, after, "bso_commands_total") == 11
    assert delta(before, after, "bso_event_store_append_seconds_count") == 11
    assert delta(before, after, "bso_reanalyses_total") == 1
    assert value(after, "bso_jobs", stage="pruning") + value(after, "bso_jobs", stage="bandit") == 1
    assert value(after, "bso_jobs", stage="deleted") == 0

    seconds = "bso_http_request_duration_seconds_count"
    assert delta(before, after, seconds, route="/jobs/batch_size", method="GET", status="2xx") == 6
    assert delta(before, after, seconds, route="/v1/jobs/{job_id}/trials/{number}", method="GET", status="4xx") == 1
    assert delta(before, after, seconds, route="unmatched", method="GET", status="4xx") == 1
    assert delta(before, after, seconds, route="/jobs", method="other", status="4xx") == 1
    labels = {value for (_, label_set) in after for (_, value) in label_set}
    assert not any("metrics-1" in label or "secret" in label or "BREW" in label for label in labels)


def test_a_deleted_job_counts_as_deleted(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'deleted.db'}")
    with TestClient(create_app(settings)) as client:
        client.post("/jobs", json=SPEC)
        client.post("/jobs", json={**SPEC, "job_id": "metrics-2"})
        assert client.delete("/jobs", params={"job_id": "metrics-1"}).status_code == 200
        scraped = samples(client.get("/metrics").text)
    assert value(scraped, "bso_jobs", stage="deleted") == 1
    assert value(scraped, "bso_jobs", stage="pruning") == 1


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _environment(pid: int) -> dict[str, str]:
    pairs = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


def _written(directory: Path, kind: str, name: str, **labels: str) -> dict[int, float]:
    """One sample's total in each worker's own file (``{kind}_{pid}.db``), as the worker wrote it.

    A histogram's count is the sum of its buckets: each bucket holds only its own observations.
    """
    from prometheus_client.mmap_dict import MmapedDict

    totals = {}
    for path in directory.glob(f"{kind}_*.db"):
        keys = [(json.loads(key), value) for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))]
        totals[int(path.stem.split("_")[1])] = sum(
            value for (_, sample, sample_labels, _), value in keys
            if sample == name and labels.items() <= sample_labels.items()
        )
    return totals


def _settled(directory: Path, commands: int, routed: int, timeout: float = 20.0) -> dict[int, float]:
    """Each worker's command count, once every request the client was answered is written.

    A worker writes a request's values as the request ends, after the response has gone
    out (so the histogram times all of it): the client can read the files, or scrape the
    other worker, before the worker that answered last has written. Read until the files
    hold every request, or the time is up and the assertions say what is missing.
    """
    route = {"route": "/jobs/batch_size", "method": "GET", "status": "2xx"}
    deadline = time.monotonic() + timeout
    while True:
        per_worker = _written(directory, "counter", "bso_commands_total")
        timed = _written(directory, "histogram", "bso_http_request_duration_seconds_bucket", **route)
        if (sum(per_worker.values()), sum(timed.values())) == (commands, routed) or time.monotonic() > deadline:
            return per_worker
        time.sleep(0.05)


def test_a_two_worker_server_answers_every_scrape_for_both_workers(tmp_path: Path) -> None:
    requests = 40
    with running_server(f"sqlite:///{tmp_path / 'two.db'}", tmp_path, "--workers", "2") as server:
        children = _children(server.process.pid)
        directory = Path(_environment(children[0])["PROMETHEUS_MULTIPROC_DIR"])
        httpx.post(f"{server.url}/jobs", json=SPEC)
        for _ in range(requests - 1):  # a fresh connection each: the kernel spreads them over both workers
            assert httpx.get(f"{server.url}/jobs/batch_size", params={"job_id": "metrics-1"}).status_code == 200
        per_worker = _settled(directory, requests, requests - 1)  # each worker's file is named after its pid
        scrapes = [samples(httpx.get(f"{server.url}/metrics").text) for _ in range(6)]
    assert len(per_worker) == 2 and set(per_worker) <= set(children), (per_worker, children)
    assert all(count > 0 for count in per_worker.values()), per_worker
    assert sum(per_worker.values()) == requests
    for scraped in scrapes:  # whichever worker answered, it reports the whole server
        assert value(scraped, "bso_commands_total") == requests
        route = {"route": "/jobs/batch_size", "method": "GET", "status": "2xx"}
        assert value(scraped, "bso_http_request_duration_seconds_count", **route) == requests - 1
        assert value(scraped, "bso_jobs", stage="pruning") == 1
    assert not directory.exists(), "bso serve removes its metrics directory when it stops"
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None


def test_a_single_process_server_keeps_its_metrics_in_memory(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"  # where a metrics directory would be made
    temporary.mkdir()
    inherited = tmp_path / "inherited"  # a directory left in the environment by someone else
    inherited.mkdir()
    environment = {"TMPDIR": str(temporary), "PROMETHEUS_MULTIPROC_DIR": str(inherited)}
    with running_server(f"sqlite:///{tmp_path / 'one.db'}", tmp_path, **environment) as server:
        httpx.post(f"{server.url}/jobs", json=SPEC)
        for _ in range(3):
            assert httpx.get(f"{server.url}/jobs/batch_size", params={"job_id": "metrics-1"}).status_code == 200
        scraped = samples(httpx.get(f"{server.url}/metrics").text)
        written = list(temporary.iterdir()) + list(inherited.iterdir())
    assert value(scraped, "bso_commands_total") == 4
    assert written == [], "one worker writes no metric files"
