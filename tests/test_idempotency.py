"""Idempotency-Key: a retried request is answered from the log and records nothing new."""

import json
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from application.idempotency import RequestKey
from application.service import BatchSizeOptimizer
from infrastructure.settings import Settings, persistence_env
from tests.helpers import CLIENT_SPEC, job_spec

SPEC = {**CLIENT_SPEC, "job_id": "idem-1", "job_id_prefix": "idem"}


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=database_url)), raise_server_exceptions=False) as test_client:
        yield test_client


def send(client: TestClient, method: str, path: str, body: Any = None, key: str | None = None, **kwargs: Any):
    headers = {"Idempotency-Key": key} if key is not None else {}
    content = None if body is None else json.dumps(body)
    return client.request(method, path, content=content, headers=headers, **kwargs)


def event_topics(client: TestClient, job_id: str) -> list[str]:
    optimizer: BatchSizeOptimizer = client.app.state.optimizer
    job = optimizer.live_job(job_id)
    return [type(event).TOPIC for event in optimizer.events.get(job.id)]


def report_body(trial: dict[str, Any], epoch: int, metric: float) -> dict[str, Any]:
    return {**trial, "time": 10.0 * epoch, "energy": 100.0 * epoch, "metric": metric, "current_epoch": epoch}


def test_a_retried_predict_returns_the_same_trial(client: TestClient) -> None:
    assert send(client, "POST", "/jobs", SPEC).status_code == 201
    first = send(client, "GET", "/jobs/batch_size", params={"job_id": "idem-1"}, key="p-1")
    again = send(client, "GET", "/jobs/batch_size", params={"job_id": "idem-1"}, key="p-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() == {"job_id": "idem-1", "batch_size": 32, "trial_number": 1}
    assert event_topics(client, "idem-1").count("bso.Job.TrialDispatched") == 1
    other = send(client, "GET", "/jobs/batch_size", params={"job_id": "idem-1"}, key="p-2")
    assert other.json()["trial_number"] == 2


def test_a_retried_report_is_applied_once(client: TestClient) -> None:
    send(client, "POST", "/jobs", SPEC)
    trial = send(client, "GET", "/jobs/batch_size", params={"job_id": "idem-1"}).json()
    progress = [send(client, "POST", "/report", report_body(trial, 1, 0.1), key="r-1") for _ in range(3)]
    assert [answer.json()["stop_train"] for answer in progress] == [False] * 3
    final = [send(client, "POST", "/report", report_body(trial, 2, 0.9), key="r-2") for _ in range(3)]
    assert all(answer.json() == final[0].json() for answer in final)
    assert final[0].json() == {"stop_train": True, "converged": True, "message": "Train succeeded"}
    topics = event_topics(client, "idem-1")
    assert topics.count("bso.Job.TrialProgressReported") == 1
    assert topics.count("bso.Job.TrialReported") == 1


def test_the_same_key_with_another_body_is_a_409_and_records_nothing(client: TestClient) -> None:
    send(client, "POST", "/jobs", SPEC)
    trial = send(client, "GET", "/jobs/batch_size", params={"job_id": "idem-1"}).json()
    assert send(client, "POST", "/report", report_body(trial, 1, 0.1), key="k").status_code == 200
    before = event_topics(client, "idem-1")
    clash = send(client, "POST", "/report", report_body(trial, 2, 0.9), key="k")
    assert clash.status_code == 409
    assert "Idempotency-Key" in clash.json()["message"]
    assert event_topics(client, "idem-1") == before


def test_keys_are_scoped_by_route(client: TestClient) -> None:
    send(client, "POST", "/jobs", SPEC)
    trial = send(client, "GET", "/jobs/batch_size", params={"job_id": "idem-1"}, key="shared").json()
    ended = send(client, "PATCH", "/trials", trial, key="shared")
    assert ended.status_code == 200
    assert event_topics(client, "idem-1").count("bso.Job.TrialEnded") == 1


def test_a_retried_register_without_job_id_creates_one_job(client: TestClient) -> None:
    spec = {**SPEC, "job_id": None}
    first = send(client, "POST", "/jobs", spec, key="reg-1")
    again = send(client, "POST", "/jobs", spec, key="reg-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["job_id"] == first.json()["job_id"]


def test_a_retried_end_and_delete_answer_as_the_first_time(client: TestClient) -> None:
    send(client, "POST", "/jobs", SPEC)
    trial = send(client, "GET", "/jobs/batch_size", params={"job_id": "idem-1"}).json()
    assert [send(client, "PATCH", "/trials", trial, key="e").status_code for _ in range(2)] == [200, 200]
    deleted = [send(client, "DELETE", "/jobs", params={"job_id": "idem-1"}, key="d") for _ in range(2)]
    assert [response.status_code for response in deleted] == [200, 200]
    assert send(client, "DELETE", "/jobs", params={"job_id": "idem-1"}).status_code == 404


def test_an_unusable_key_is_a_422_naming_the_header(client: TestClient) -> None:
    send(client, "POST", "/jobs", SPEC)
    response = send(client, "GET", "/jobs/batch_size", params={"job_id": "idem-1"}, key="x" * 300)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["message"]


def test_two_racing_copies_of_a_request_dispatch_one_trial(shared_database_url: str) -> None:
    ours = BatchSizeOptimizer(env=persistence_env(shared_database_url))
    rival = BatchSizeOptimizer(env=persistence_env(shared_database_url))
    try:
        _, spec = ours.register_job(job_spec())
        job_id = spec["job_id"]
        key = RequestKey.of(job_id, "GET /jobs/batch_size", "race", {"job_id": job_id})
        real_save = ours.save
        raced: list[dict[str, Any]] = []

        def save_after_the_rival(*aggregates: Any, **kwargs: Any) -> Any:
            if not raced:  # the other copy, in another process, commits first
                raced.append(rival.predict(job_id, key))
            return real_save(*aggregates, **kwargs)

        ours.save = save_after_the_rival  # type: ignore[method-assign]
        answer = ours.predict(job_id, key)
        assert answer == raced[0]
        assert ours.conflict_stats.as_dict()["conflicts_retried"] == 1
        assert ours.live_job(job_id).trial_count == 1
        restarted = BatchSizeOptimizer(env=persistence_env(shared_database_url))
        try:  # the key outlives the process that stored it
            assert restarted.predict(job_id, key) == answer
            assert restarted.live_job(job_id).trial_count == 1
        finally:
            restarted.close()
    finally:
        rival.close()
        ours.close()
