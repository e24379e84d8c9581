"""Stale trials: a trial not heard from for the lease is expired by an event and its slot freed."""

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from application.service import BatchSizeOptimizer
from domain.errors import TrialAbandonedError
from domain.reporting import EpochReport
from infrastructure.settings import Settings, persistence_env
from tests.helpers import job_spec

LEASE = 600.0


class ManualClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def optimizer(database_url: str, clock: ManualClock) -> Iterator[BatchSizeOptimizer]:
    app = BatchSizeOptimizer(env=persistence_env(database_url), clock=clock, lease_seconds=LEASE)
    yield app
    app.close()


def expiries(optimizer: BatchSizeOptimizer, job_id: str) -> list[dict]:
    job = optimizer.live_job(job_id)
    return [
        {"number": event.number, "last_heard_at": event.last_heard_at, "at": event.timestamp}
        for event in optimizer.events.get(job.id)
        if isinstance(event, type(job).TrialExpired)
    ]


def test_an_abandoned_exploration_expires_and_its_size_is_explored_again(
    database_url: str, optimizer: BatchSizeOptimizer, clock: ManualClock
) -> None:
    _, spec = optimizer.register_job(job_spec(batch_sizes=[16, 32, 64], default_batch_size=32))
    job_id = spec["job_id"]
    abandoned = optimizer.predict(job_id)
    assert abandoned == {"job_id": job_id, "batch_size": 32, "trial_number": 1}
    dispatched_at = clock.now
    clock.advance(LEASE / 2)
    stand_in = optimizer.predict(job_id)  # the exploration of 32 is in flight: a concurrent trial
    assert optimizer.live_job(job_id).trial_statuses() == ["Dispatched", "Dispatched"]
    assert expiries(optimizer, job_id) == []

    clock.advance(LEASE / 2 + 1)  # trial 1 silent for lease + 1 s; trial 2 for lease/2 + 1 s
    again = optimizer.predict(job_id)
    assert again == {"job_id": job_id, "batch_size": 32, "trial_number": 3}
    job = optimizer.live_job(job_id)
    assert job.trial_statuses() == ["Failed", "Dispatched", "Dispatched"]
    assert expiries(optimizer, job_id) == [
        {"number": 1, "last_heard_at": dispatched_at.timestamp(), "at": clock.now}
    ]
    assert [record["trial"] for record in job.policy_state["explorations"]["32"]] == [3]

    # From now on trial 1 behaves as one ended by PATCH /trials.
    with pytest.raises(TrialAbandonedError):
        optimizer.report(job_id, EpochReport(1, 32, 10.0, 100.0, 0.9, 1))
    optimizer.end_trial(job_id, 1, 32)
    assert expiries(optimizer, job_id)[0]["number"] == 1 and len(expiries(optimizer, job_id)) == 1
    assert stand_in["trial_number"] == 2

    if database_url != "memory://":  # the expiry replays from the log, whatever the clock says now
        replayed = BatchSizeOptimizer(env=persistence_env(database_url), lease_seconds=1.0)
        try:
            rebuilt = replayed.repository.get(job.id)
            assert rebuilt.trial_statuses() == optimizer.live_job(job_id).trial_statuses()
            assert rebuilt.open_trials == optimizer.live_job(job_id).open_trials
        finally:
            replayed.close()


def test_a_progress_report_renews_the_lease(optimizer: BatchSizeOptimizer, clock: ManualClock) -> None:
    _, spec = optimizer.register_job(job_spec())
    job_id = spec["job_id"]
    trial = optimizer.predict(job_id)
    clock.advance(LEASE * 0.8)
    assert optimizer.report(job_id, EpochReport(1, trial["batch_size"], 10.0, 100.0, 0.1, 1))["stop_train"] is False
    clock.advance(LEASE * 0.8)  # 1.6 leases since dispatch, 0.8 since the last report
    answer = optimizer.report(job_id, EpochReport(1, trial["batch_size"], 20.0, 200.0, 0.9, 2))
    assert answer["converged"] is True
    assert expiries(optimizer, job_id) == []


def test_a_server_with_a_short_lease_expires_over_http(tmp_path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'lease.db'}", trial_lease_seconds=0.3)
    spec = {"job_id": "lease-1", "job_id_prefix": "lease", "batch_sizes": [16, 32], "default_batch_size": 32,
            "max_power": 300, "number_of_gpus": 1, "gpu_model": "V100", "mab_seed": 1}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.post("/jobs", content=json.dumps(spec)).status_code == 201
        first = client.get("/jobs/batch_size", params={"job_id": "lease-1"}).json()
        time.sleep(0.5)
        second = client.get("/jobs/batch_size", params={"job_id": "lease-1"}).json()
        late = client.post("/report", content=json.dumps(
            {**first, "time": 1.0, "energy": 1.0, "metric": 0.9, "current_epoch": 1}))
    assert (first["batch_size"], second["batch_size"], second["trial_number"]) == (32, 32, 2)
    assert late.status_code == 409 and "expired" in late.json()["message"]
