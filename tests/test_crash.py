"""kill -9 a loaded server, restart it on the same database: nothing acknowledged is lost."""

import json
import threading
import time
from pathlib import Path

import httpx

from bench.hammer import Ledger, job_spec, measurements, trainer, verify
from tests.servers import running_server

TRAINERS = 8
CYCLES = 40  # an upper bound: the kill comes long before the trainers run out
FINISHED_BEFORE_KILL = 12


def test_every_acknowledged_report_survives_a_kill_and_the_job_continues(
    shared_database_url: str, tmp_path: Path
) -> None:
    database_url = shared_database_url
    job_id = "crash-1"
    ledger, stop = Ledger(), threading.Event()
    with running_server(database_url, tmp_path) as server:
        assert httpx.post(f"{server.url}/jobs", content=json.dumps(job_spec(job_id))).status_code == 201
        threads = [
            threading.Thread(target=trainer, args=([server.url], job_id, CYCLES, ledger, stop, seed), daemon=True)
            for seed in range(TRAINERS)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(ledger.finished) < FINISHED_BEFORE_KILL and time.monotonic() < deadline:
            time.sleep(0.02)
        server.stop(kill=True)  # SIGKILL to the server's process group, mid-run
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert len(ledger.finished) >= FINISHED_BEFORE_KILL
    assert ledger.failures == []  # no 5xx before the kill
    assert ledger.statuses["transport_error"] > 0  # the load really was cut off

    with running_server(database_url, tmp_path) as restarted:
        assert verify(database_url, ledger, crashed=True) == []
        with httpx.Client(base_url=restarted.url, timeout=30) as client:
            for (_, number), final in sorted(ledger.finished.items()):
                body = {key: value for key, value in final.items() if key != "answer"}
                again = client.post("/report", content=json.dumps(body)).json()
                assert again == {
                    "stop_train": True,
                    "converged": final["answer"]["converged"],
                    "message": f"Result for this trial({number}) is already reported.",
                }
            trial = client.get("/jobs/batch_size", params={"job_id": job_id}).json()
            assert trial["trial_number"] > max(ledger.trials[job_id])
            final = client.post("/report", content=json.dumps({**trial, **measurements(trial["batch_size"], 2)}))
            assert final.status_code == 200 and final.json()["stop_train"] is True
