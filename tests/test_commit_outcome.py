"""A commit whose outcome the store leaves unknown is resolved by reading, never by deciding
again: no phantom trial, no false "not applied". The faults are injected at the recorder,
around a real insert into each store (memory, SQLite, PostgreSQL)."""

from typing import Any, Callable, Iterator

import pytest
from eventsourcing.persistence import OperationalError

from application.service import BatchSizeOptimizer, OutcomeUnknownError
from domain.reporting import EpochReport
from infrastructure.settings import persistence_env
from tests.helpers import job_spec

JOB = "test-outcome"


@pytest.fixture
def app(database_url: str) -> Iterator[BatchSizeOptimizer]:
    optimizer = BatchSizeOptimizer(env=persistence_env(database_url))
    optimizer.register_job(job_spec(job_id=JOB))
    yield optimizer
    optimizer.close()


def once(app: BatchSizeOptimizer, fault: Callable[[Callable[..., Any], Any], Any]) -> list[int]:
    """Make the recorder's next insert go through ``fault``; returns a list that counts its calls."""
    real = app.recorder.insert_events
    calls: list[int] = []

    def insert(stored_events: Any, **kwargs: Any) -> Any:
        if calls:
            return real(stored_events, **kwargs)
        calls.append(1)
        return fault(lambda: real(stored_events, **kwargs), stored_events)

    app.recorder.insert_events = insert  # type: ignore[method-assign]
    return calls


def committed_then_connection_lost(insert: Callable[[], Any], events: Any) -> Any:
    insert()
    raise OperationalError("server closed the connection unexpectedly")


def committed_then_sent_again(insert: Callable[[], Any], events: Any) -> Any:
    """A driver that retries a commit whose answer it lost: the second copy is a conflict."""
    insert()
    return insert()


@pytest.mark.parametrize("fault", [committed_then_connection_lost, committed_then_sent_again])
def test_a_predict_committed_before_a_failure_is_answered_as_committed(app: BatchSizeOptimizer, fault: Any) -> None:
    calls = once(app, fault)
    first = app.predict(JOB)
    assert calls == [1]
    assert first["trial_number"] == 1
    job = app.live_job(JOB)
    assert job.trial_count == 1, "no second trial was decided for the same predict"
    assert app.predict(JOB)["trial_number"] == 2


@pytest.mark.parametrize("fault", [committed_then_connection_lost, committed_then_sent_again])
def test_a_report_committed_before_a_failure_is_answered_with_its_verdict(app: BatchSizeOptimizer, fault: Any) -> None:
    trial = app.predict(JOB)
    once(app, fault)
    answer = app.report(JOB, EpochReport(trial["trial_number"], trial["batch_size"], 10.0, 100.0, 1.0, 1))
    assert answer == {"stop_train": True, "converged": True, "message": "Train succeeded"}
    assert app.live_job(JOB).trial_status(trial["trial_number"]) == "Succeeded"


def test_a_failed_commit_is_decided_again_as_if_never_tried(app: BatchSizeOptimizer) -> None:
    def lost_before_commit(insert: Callable[[], Any], events: Any) -> Any:
        raise OperationalError("could not send data to server")

    once(app, lost_before_commit)
    with pytest.raises(OperationalError):
        app.predict(JOB)
    assert app.live_job(JOB).trial_count == 0
    assert app.predict(JOB)["trial_number"] == 1


def test_an_unreadable_store_after_a_failed_commit_says_the_outcome_is_unknown(app: BatchSizeOptimizer) -> None:
    def store_gone(insert: Callable[[], Any], events: Any) -> Any:
        def unreadable(*args: Any, **kwargs: Any) -> Any:
            raise OperationalError("connection refused")

        app.recorder.select_events = unreadable  # type: ignore[method-assign]
        raise OperationalError("server closed the connection unexpectedly")

    once(app, store_gone)
    with pytest.raises(OutcomeUnknownError, match="Idempotency-Key"):
        app.predict(JOB)


def test_an_unknown_outcome_is_answered_503_with_retry_after_and_a_closed_connection() -> None:
    from starlette.testclient import TestClient

    from api.http.app import create_app
    from infrastructure.settings import Settings
    from tests.helpers import CLIENT_SPEC

    optimizer = BatchSizeOptimizer(env=persistence_env("memory://"))
    with TestClient(create_app(Settings(database_url="memory://"), optimizer=optimizer)) as client:
        assert client.post("/jobs", json={**CLIENT_SPEC, "job_id": "api-outcome"}).status_code == 201

        def store_gone(insert: Callable[[], Any], events: Any) -> Any:
            def unreadable(*args: Any, **kwargs: Any) -> Any:
                raise OperationalError("connection refused")

            optimizer.recorder.select_events = unreadable  # type: ignore[method-assign]
            raise OperationalError("server closed the connection unexpectedly")

        once(optimizer, store_gone)
        answer = client.get("/jobs/batch_size", params={"job_id": "api-outcome"})
    assert answer.status_code == 503 and "Idempotency-Key" in answer.json()["message"]
    assert answer.headers["retry-after"] == "5" and answer.headers["connection"] == "close"
