"""Many trainers at once on one job, against a real ``bso serve`` over loopback."""

import json
import threading
from pathlib import Path

import httpx

from application.service import BatchSizeOptimizer
from infrastructure.settings import persistence_env
from tests.servers import running_server

TRAINERS = 16
CYCLES = 6


def trainer(url: str, job_id: str, outcomes: list, errors: list) -> None:
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for cycle in range(CYCLES):
            trial = client.get("/jobs/batch_size", params={"job_id": job_id})
            if trial.status_code != 200:
                errors.append(("predict", trial.status_code, trial.text))
                continue
            body = trial.json()
            for epoch in (1, 2):
                metric = 0.9 if epoch == 2 else 0.1
                result = {**body, "time": 10.0 * epoch, "energy": 100.0 * epoch, "metric": metric, "current_epoch": epoch}
                answer = client.post("/report", content=json.dumps(result))
                if answer.status_code != 200:
                    errors.append(("report", answer.status_code, answer.text))
                    break
                if answer.json()["stop_train"]:
                    outcomes.append((body["trial_number"], epoch, answer.json()["converged"]))
                    break
            if cycle % 3 == 2:  # like Zeus's client at exit: PATCH after the final report, a no-op
                client.patch("/trials", content=trial.text)


def test_concurrent_trainers_get_unique_gap_free_trials_and_every_report_is_kept(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'served.db'}"
    spec = {"job_id": "conc-1", "job_id_prefix": "conc", "batch_sizes": [16, 32, 64], "default_batch_size": 32,
            "max_power": 300, "number_of_gpus": 1, "gpu_model": "V100", "max_epochs": 4}
    outcomes: list = []
    errors: list = []
    with running_server(database_url, tmp_path) as server:
        assert httpx.post(f"{server.url}/jobs", content=json.dumps(spec)).status_code == 201
        threads = [threading.Thread(target=trainer, args=(server.url, "conc-1", outcomes, errors)) for _ in range(TRAINERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    assert errors == []
    numbers = sorted(number for number, _, _ in outcomes)
    assert numbers == list(range(1, TRAINERS * CYCLES + 1))

    app = BatchSizeOptimizer(env=persistence_env(database_url))
    try:
        job = app.live_job("conc-1")
        assert job.trial_statuses() == ["Succeeded"] * (TRAINERS * CYCLES)
        assert all(job.trial_converged(number) == converged for number, _, converged in outcomes)
    finally:
        app.close()
