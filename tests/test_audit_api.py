"""The /v1 audit and reanalysis routes through real HTTP calls (ASGI, in process)."""

from typing import Iterator

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from application.service import BatchSizeOptimizer
from domain.spec import POLICIES
from infrastructure.settings import Settings, persistence_env
from tests.audit_helpers import ManualClock, train
from tests.helpers import job_spec


def _client(database_url: str) -> Iterator[tuple[TestClient, BatchSizeOptimizer]]:
    optimizer = BatchSizeOptimizer(env=persistence_env(database_url), clock=ManualClock())
    try:
        with TestClient(create_app(Settings(database_url=database_url), optimizer=optimizer)) as client:
            yield client, optimizer
    finally:
        optimizer.close()


@pytest.fixture
def memory_client() -> Iterator[tuple[TestClient, BatchSizeOptimizer]]:
    yield from _client("memory://")


@pytest.fixture(params=POLICIES)
def history(request: pytest.FixtureRequest, memory_client: tuple[TestClient, BatchSizeOptimizer]) -> TestClient:
    """A job of 14 recurrences under each policy: its search, then its bandit."""
    client, optimizer = memory_client
    optimizer.register_job(job_spec(job_id="test-h", policy=request.param))
    for _ in range(14):
        train(optimizer, "test-h")
    return client


def test_job_list_pages_filters_and_keeps_deleted_jobs_on_every_store(database_url: str) -> None:
    for client, optimizer in _client(database_url):
        for name in ("alpha-1", "alpha-2", "beta-1", "alpha-3"):
            optimizer.register_job(job_spec(job_id=name, job_id_prefix=name.split("-")[0]))
        train(optimizer, "alpha-2")
        optimizer.delete_job("alpha-3")

        first = client.get("/v1/jobs", params={"prefix": "alpha", "limit": 2})
        assert first.status_code == 200
        assert [job["job_id"] for job in first.json()["jobs"]] == ["alpha-1", "alpha-2"]
        assert first.json()["jobs"][1]["trials"]["succeeded"] == 1
        assert first.json()["jobs"][1]["min_cost_batch_size"] == 32
        rest = client.get("/v1/jobs", params={"prefix": "alpha", "after": first.json()["next_after"]}).json()
        assert [(job["job_id"], job["deleted"]) for job in rest["jobs"]] == [("alpha-3", True)]
        assert rest["next_after"] is None
        everything = client.get("/v1/jobs").json()["jobs"]
        assert len(everything) == 4 and all(job["registered_at"] and job["job_uuid"] for job in everything)


def test_bad_paging_values_are_422_naming_the_field(memory_client: tuple[TestClient, BatchSizeOptimizer]) -> None:
    client, _ = memory_client
    for query, field in [({"limit": "0"}, "query.limit"), ({"limit": "x"}, "query.limit"), ({"after": "-1"}, "query.after")]:
        response = client.get("/v1/jobs", params=query)
        assert response.status_code == 422
        assert response.json()["detail"][0]["field"] == field


def test_job_state_shows_the_policys_search_then_arms(history: TestClient) -> None:
    state = history.get("/v1/jobs/test-h").json()
    assert state["stage"] == "MAB" and state["deleted"] is False
    assert state["spec"]["job_id"] == "test-h" and state["seed"] == 1
    if state["policy"] == "zeus":
        assert state["pruning"]["rounds_done"] == state["pruning"]["num_rounds"] == 2
        assert state["pruning"]["done"] is True and state["pruning"]["round"] is None
        assert [arm["batch_size"] for arm in state["arms"]] == state["pruning"]["survivors"]
        assert state["lsts"] is None
    else:  # no pruning rounds: LSTS walks from the default, and its arms are what the walk kept
        assert state["pruning"] is None
        assert state["lsts"]["phase"] == "bandit" and state["lsts"]["explored"][0] == 32
        assert [arm["batch_size"] for arm in state["arms"]] == state["lsts"]["arms"]
    assert all({"mean", "precision", "num_observations"} <= set(arm) for arm in state["arms"])
    assert state["trials"]["total"] == 14
    assert state["early_stop"]["bound"] == state["early_stop"]["factor"] * state["early_stop"]["reference"]
    by_uuid = history.get(f"/v1/jobs/{state['job_uuid']}").json()
    assert by_uuid == state
    summary = history.get("/v1/jobs/test-h/summary").json()
    assert summary["policy"] == state["policy"] and summary["recommended_batch_size"] in state["spec"]["batch_sizes"]


def test_pruning_progress_counts_rounds_from_one_while_running() -> None:
    from application.audit import state_view
    from application.service import BatchSizeOptimizer
    from infrastructure.settings import persistence_env
    from tests.helpers import job_spec

    app = BatchSizeOptimizer(env=persistence_env("memory://"))
    app.register_job(job_spec(job_id="test-rounds", num_pruning_rounds=2))
    assert state_view(app.live_job("test-rounds"))["pruning"] == {
        "round": 1, "num_rounds": 2, "rounds_done": 0, "done": False, "survivors": [8, 16, 32, 64],
        "default_batch_size": 32,
    }
    app.close()


FIRST_WHY = {  # the first trial explores the default, with no random draw
    "zeus": {"stage": "Pruning", "round": 1, "direction": "down", "generator_state_after": None},
    "lsts": {"policy": "lsts", "phase": "explore", "rule": "walk", "direction": "start", "best": None,
             "generator_state_after": None},
}


def test_trials_and_why_each_got_its_batch_size(history: TestClient) -> None:
    policy = history.get("/v1/jobs/test-h").json()["policy"]
    trials = history.get("/v1/jobs/test-h/trials").json()["trials"]
    assert [trial["number"] for trial in trials] == list(range(1, 15))
    assert {"batch_size", "kind", "status", "epochs_reported", "time", "energy", "cost", "converged",
            "stop_reason", "dispatched_at", "finished_at"} <= set(trials[0])
    first = history.get("/v1/jobs/test-h/trials/1").json()
    # rounds are counted from 1 in every view, as in the state's "round 1 of 2"
    assert first["why"] == FIRST_WHY[policy]
    assert [epoch["epoch"] for epoch in first["epochs"]] == list(range(1, first["epochs_reported"] + 1))
    assert first["epochs"][-1]["final"] is True
    bandit = [history.get(f"/v1/jobs/test-h/trials/{t['number']}").json()["why"] for t in trials if t["kind"] == "MAB"]
    drawn = [why for why in bandit if why["generator_state_after"] is not None]  # LSTS confirms without drawing
    assert drawn and all(why["generator_state_before"] != why["generator_state_after"] for why in drawn)
    if policy == "zeus":
        assert all(why["stage"] == "MAB" and why["phase"] in ("explore", "thompson") for why in bandit)
        assert all(sorted(why["permutation"]) == [arm["batch_size"] for arm in why["arms"]] for why in bandit)
        assert any(w["phase"] == "thompson" and set(w["samples"]) == {str(a["batch_size"]) for a in w["arms"]} for w in bandit)
    else:
        assert all(why["phase"] == "bandit" and why["rule"] in ("confirmation", "thompson") for why in bandit)
        assert any(w["rule"] == "thompson" and set(w["draws"]) == set(map(str, w["arms"])) for w in bandit)


def test_a_bandit_trials_why_shows_the_arms_and_generator_it_was_decided_from(history: TestClient) -> None:
    events = history.get("/v1/jobs/test-h/events", params={"limit": 1000}).json()["events"]
    bandit = [e for e in events if e["type"] == "bso.Job.TrialDispatched" and e["payload"]["kind"] == "MAB"]
    assert len(bandit) >= 2
    for event in bandit:
        why = history.get(f"/v1/jobs/test-h/trials/{event['payload']['number']}").json()["why"]
        before = history.get("/v1/jobs/test-h/state", params={"version": event["version"] - 1}).json()
        if before["policy"] == "zeus":
            assert "arms" not in event["payload"]["reason"]  # not repeated in the event...
            assert why["arms"] == before["arms"]  # ...but restored exactly as the decision saw them
        else:  # LSTS records the arms it chose among, batch sizes as its state holds them
            assert why["arms"] == event["payload"]["reason"]["arms"] == before["lsts"]["arms"]
        assert why["generator_state_after"] == event["payload"]["generator_state"]
        if event["payload"]["generator_state"] is not None:  # a decision that drew
            assert why["generator_state_before"] == before["generator_state"]


def test_events_are_paged_in_order(history: TestClient) -> None:
    first = history.get("/v1/jobs/test-h/events", params={"limit": 5}).json()
    assert [event["version"] for event in first["events"]] == [1, 2, 3, 4, 5]
    assert first["events"][0]["type"] == "bso.Job.Registered"
    assert first["events"][1]["payload"]["number"] == 1
    second = history.get("/v1/jobs/test-h/events", params={"after": first["next_after"], "limit": 1000}).json()
    assert second["events"][0]["version"] == 6 and second["next_after"] is None
    total = len(first["events"]) + len(second["events"])
    assert total == history.get("/v1/jobs/test-h").json()["version"]


def test_state_at_a_version_and_at_an_instant(history: TestClient) -> None:
    events = history.get("/v1/jobs/test-h/events", params={"limit": 1000}).json()["events"]
    at_two = history.get("/v1/jobs/test-h/state", params={"version": 2}).json()
    assert at_two["version"] == 2 and at_two["trials"]["total"] == 1 and at_two["min_cost"] is None
    instant = events[9]["timestamp"]
    last_then = [event["version"] for event in events if event["timestamp"] == instant][-1]  # one command's events share it
    assert history.get("/v1/jobs/test-h/state", params={"at": instant}).json() == history.get(
        "/v1/jobs/test-h/state", params={"version": last_then}
    ).json()
    now = history.get("/v1/jobs/test-h/state").json()
    assert now == history.get("/v1/jobs/test-h").json()


def test_unknowns_are_404_and_bad_values_422(history: TestClient) -> None:
    assert history.get("/v1/jobs/nobody").status_code == 404
    assert history.get("/v1/jobs/00000000-0000-0000-0000-000000000000/trials").status_code == 404
    assert history.get("/v1/jobs/test-h/trials/99").status_code == 404
    assert history.get("/v1/jobs/test-h/state", params={"version": 100000}).status_code == 404
    assert history.get("/v1/jobs/test-h/state", params={"at": "1999-01-01T00:00:00Z"}).status_code == 404
    for path, params in [
        ("/v1/jobs/test-h/state", {"version": "0"}),
        ("/v1/jobs/test-h/state", {"version": "two"}),
        ("/v1/jobs/test-h/state", {"at": "yesterday"}),
        ("/v1/jobs/test-h/state", {"version": "2", "at": "2024-05-01T00:00:00Z"}),
        ("/v1/jobs/test-h/events", {"limit": "0"}),
        ("/v1/jobs/test-h/trials/first", {}),
    ]:
        response = history.get(path, params=params)
        assert response.status_code == 422, (path, params)
        assert response.json()["message"].startswith("Invalid request")


def test_deleted_jobs_stay_readable_and_a_new_incarnation_gets_its_own_uuid(
    memory_client: tuple[TestClient, BatchSizeOptimizer],
) -> None:
    client, optimizer = memory_client
    optimizer.register_job(job_spec(job_id="test-d"))
    train(optimizer, "test-d")
    old = client.get("/v1/jobs/test-d").json()
    optimizer.delete_job("test-d")
    deleted = client.get("/v1/jobs/test-d").json()
    assert deleted["deleted"] is True and deleted["job_uuid"] == old["job_uuid"]
    assert client.get("/v1/jobs/test-d/trials/1").status_code == 200
    optimizer.register_job(job_spec(job_id="test-d"))
    fresh = client.get("/v1/jobs/test-d").json()
    assert fresh["job_uuid"] != old["job_uuid"] and fresh["trials"]["total"] == 0
    assert client.get(f"/v1/jobs/{old['job_uuid']}").json()["deleted"] is True


def test_reanalysis_over_http_and_it_writes_nothing(history: TestClient) -> None:
    version = history.get("/v1/jobs/test-h").json()["version"]
    same = history.post("/v1/jobs/test-h/reanalysis", json={})
    assert same.status_code == 200
    assert same.json()["summary"]["decision_changes"] == 0
    assert history.post("/v1/jobs/test-h/reanalysis").json()["summary"] == same.json()["summary"]  # no body
    every_knob = same.json()["knobs"]["actual"]  # the policy, the booleans and the seed included
    assert history.post("/v1/jobs/test-h/reanalysis", json=every_knob).json()["summary"] == same.json()["summary"]
    for total in ("energy", "time", "cost"):
        assert same.json()["summary"]["actual"][total] == same.json()["summary"]["counterfactual"][total]
    other = history.post("/v1/jobs/test-h/reanalysis", json={"eta_knob": 0.9, "beta_knob": None, "resample_seed": 3})
    assert other.status_code == 200
    assert other.json()["knobs"]["counterfactual"]["beta_knob"] is None
    assert other.json()["resample_seed"] == 3
    assert history.get("/v1/jobs/test-h").json()["version"] == version
    assert history.post("/v1/jobs/nobody/reanalysis", json={}).status_code == 404
    for body, field in [({"eta_knob": 1.5}, "eta_knob"), ({"window_size": -1}, "window_size"), ({"gamma": 1}, "gamma"),
                        ({"num_pruning_rounds": 0, "mab_num_explorations": 0}, "mab_num_explorations"),
                        ({"n_min_tol": False}, "body")]:
        response = history.post("/v1/jobs/test-h/reanalysis", json=body)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["field"] == field
