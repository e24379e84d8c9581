"""The Zeus-compatible routes through real HTTP requests on the ASGI app."""

import json
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from infrastructure.settings import Settings
from tests.helpers import CLIENT_SPEC as SPEC


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'api.db'}", max_body_bytes=4096)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def raw(client: TestClient, method: str, path: str, body: Any, **kwargs: Any):
    """Send JSON bytes with no Content-Type header, as Zeus's client does."""
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    response = client.request(method, path, content=content, **kwargs)
    assert "traceback" not in response.text.lower()
    return response


def register(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = raw(client, "POST", "/jobs", {**SPEC, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


def test_register_generates_an_id_and_sorts_batch_sizes(client: TestClient) -> None:
    job = register(client)
    assert job["job_id"].startswith("api-") and len(job["job_id"]) == len("api-") + 8
    assert job["batch_sizes"] == [16, 32, 64]
    assert job["eta_knob"] == 0.5 and job["beta_knob"] == 2.0 and job["window_size"] == 0


def test_register_twice_same_spec_is_200_other_spec_is_409(client: TestClient) -> None:
    job = register(client, job_id="api-fixed")
    again = raw(client, "POST", "/jobs", {**SPEC, "job_id": "api-fixed"})
    assert again.status_code == 200 and again.json() == job
    clash = raw(client, "POST", "/jobs", {**SPEC, "job_id": "api-fixed", "max_epochs": 9})
    assert clash.status_code == 409 and "different specification" in clash.json()["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"batch_sizes": []}, "batch_sizes"),
        ({"batch_sizes": [16, 16, 32]}, "batch_sizes"),
        ({"batch_sizes": [0, 32]}, "batch_sizes"),
        ({"default_batch_size": 8}, "default_batch_size"),
        ({"eta_knob": 1.5}, "eta_knob"),
        ({"beta_knob": 0}, "beta_knob"),
        ({"window_size": -1}, "window_size"),
        ({"mab_prior_precision": -1}, "mab_prior_precision"),
        ({"max_power": 0}, "max_power"),
        ({"gpu_model": ""}, "gpu_model"),
        ({"job_id": "other-1"}, "job_id"),
        ({"job_id": "api 1"}, "job_id"),
        ({"num_pruning_rounds": 0, "mab_num_explorations": 0}, "mab_num_explorations"),
        ({"max_epochs": "many"}, "max_epochs"),
    ],
)
def test_invalid_specs_are_422_naming_the_field(client: TestClient, change: dict, field: str) -> None:
    response = raw(client, "POST", "/jobs", {**SPEC, **change})
    assert response.status_code == 422
    assert field in response.json()["message"]


def test_missing_required_field_is_422(client: TestClient) -> None:
    body = {key: value for key, value in SPEC.items() if key != "gpu_model"}
    response = raw(client, "POST", "/jobs", body)
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "gpu_model"


def test_lax_coercion_and_unknown_fields(client: TestClient) -> None:
    job = register(client, batch_sizes=["64", 16, "32"], max_epochs="5", seed=12, whatever={"a": 1})
    assert job["batch_sizes"] == [16, 32, 64] and job["max_epochs"] == 5
    assert "seed" not in job and "whatever" not in job


def test_empty_body_reports_every_missing_field(client: TestClient) -> None:
    response = raw(client, "POST", "/report", b"")
    assert response.status_code == 422
    assert {item["field"] for item in response.json()["detail"]} >= {"job_id", "time", "energy", "metric"}


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"null", "\u00ff".encode("latin-1")])
def test_malformed_bodies_are_422(client: TestClient, body: bytes) -> None:
    response = raw(client, "POST", "/jobs", body)
    assert response.status_code == 422 and response.json()["message"]


def test_oversized_body_is_413(client: TestClient) -> None:
    response = raw(client, "POST", "/jobs", {**SPEC, "padding": "x" * 5000})
    assert response.status_code == 413


def full_cycle(client: TestClient, job_id: str) -> dict[str, Any]:
    trial = client.get("/jobs/batch_size", params={"job_id": job_id})
    assert trial.status_code == 200
    return trial.json()


def test_predict_report_cycle_with_zeus_messages(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    trial = full_cycle(client, job_id)
    assert trial == {"job_id": job_id, "batch_size": 32, "trial_number": 1}
    result = {**trial, "time": 10, "energy": 1000, "metric": 0.2, "current_epoch": 1, "error": None, "max_power": 1}
    keep = raw(client, "POST", "/report", result)
    assert keep.json() == {"stop_train": False, "converged": False, "message": "Stop condition not met, keep training"}
    done = raw(client, "POST", "/report", {**result, "metric": 0.7, "current_epoch": "2"})
    assert done.json() == {"stop_train": True, "converged": True, "message": "Train succeeded"}
    again = raw(client, "POST", "/report", {**result, "metric": 0.7, "current_epoch": 2})
    assert again.json()["message"] == "Result for this trial(1) is already reported."
    failed = full_cycle(client, job_id)
    out = raw(client, "POST", "/report", {**failed, "time": 10, "energy": 1000, "metric": 0.1, "current_epoch": 5})
    assert out.json() == {
        "stop_train": True,
        "converged": False,
        "message": "Train failed to converge within max_epoch(5)",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time": float("nan")}, "time"),
        ({"energy": float("inf")}, "energy"),
        ({"energy": -1}, "energy"),
        ({"time": -0.5}, "time"),
        ({"current_epoch": 0}, "current_epoch"),
        ({"metric": "high"}, "metric"),
        ({"trial_number": None}, "trial_number"),
    ],
)
def test_bad_reports_are_422(client: TestClient, change: dict, field: str) -> None:
    job_id = register(client)["job_id"]
    trial = full_cycle(client, job_id)
    body = {**trial, "time": 1, "energy": 1, "metric": 0.1, "current_epoch": 1, **change}
    response = raw(client, "POST", "/report", json.dumps(body))
    assert response.status_code == 422 and field in response.json()["message"]


def test_report_for_unknown_job_or_trial_is_400(client: TestClient) -> None:
    body = {"job_id": "api-none", "batch_size": 32, "trial_number": 1, "time": 1, "energy": 1, "metric": 1, "current_epoch": 1}
    assert raw(client, "POST", "/report", body).status_code == 400
    job_id = register(client)["job_id"]
    response = raw(client, "POST", "/report", {**body, "job_id": job_id})
    assert response.status_code == 400 and "Unknown trial" in response.json()["message"]


def test_predict_unknown_job_is_400_and_missing_id_is_422(client: TestClient) -> None:
    unknown = client.get("/jobs/batch_size", params={"job_id": "api-none"})
    assert unknown.status_code == 400 and "Unknown job(api-none)" in unknown.json()["message"]
    assert client.get("/jobs/batch_size").status_code == 422


def test_patch_trials_ends_a_running_trial_and_404s_unknown_ones(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    trial = full_cycle(client, job_id)
    first, again = raw(client, "PATCH", "/trials", trial), raw(client, "PATCH", "/trials", trial)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {**trial, "status": "Failed"}
    assert raw(client, "PATCH", "/trials", {**trial, "trial_number": 7}).status_code == 404
    assert raw(client, "PATCH", "/trials", {**trial, "job_id": "api-none"}).status_code == 404
    late = raw(client, "POST", "/report", {**trial, "time": 1, "energy": 1, "metric": 1, "current_epoch": 1})
    assert late.status_code == 409
    assert full_cycle(client, job_id) == {**trial, "trial_number": 2}  # slot explored again


def test_delete_then_reregister(client: TestClient) -> None:
    register(client, job_id="api-del")
    full_cycle(client, "api-del")
    deleted = client.delete("/jobs", params={"job_id": "api-del"})
    assert deleted.status_code == 200 and deleted.json() == {"job_id": "api-del", "deleted": True}
    assert client.delete("/jobs", params={"job_id": "api-del"}).status_code == 404
    assert client.get("/jobs/batch_size", params={"job_id": "api-del"}).status_code == 400
    register(client, job_id="api-del")
    assert full_cycle(client, "api-del")["trial_number"] == 1


def test_round_without_convergence_is_409_with_guidance(client: TestClient) -> None:
    job_id = register(client, batch_sizes=[16, 32], num_pruning_rounds=1)["job_id"]
    trial = full_cycle(client, job_id)
    raw(client, "POST", "/report", {**trial, "time": 1, "energy": 1, "metric": 0.0, "current_epoch": 5})
    response = client.get("/jobs/batch_size", params={"job_id": job_id})
    assert response.status_code == 409
    assert "round 1" in response.json()["message"] and "target_metric" in response.json()["message"]


def test_zero_pruning_rounds_goes_straight_to_the_bandit(client: TestClient) -> None:
    job_id = register(client, num_pruning_rounds=0)["job_id"]
    sizes = set()
    for _ in range(6):
        trial = full_cycle(client, job_id)
        sizes.add(trial["batch_size"])
        raw(client, "POST", "/report", {**trial, "time": 1, "energy": 1, "metric": 0.9, "current_epoch": 1})
    assert sizes == {16, 32, 64}  # every cold arm explored twice


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_unknown_route_and_method_are_json_errors(client: TestClient) -> None:
    assert client.get("/nope").status_code == 404
    response = client.put("/jobs")
    assert response.status_code == 405 and response.json()["message"]


def test_patch_trials_after_the_final_report_leaves_the_trial_succeeded(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    trial = full_cycle(client, job_id)
    done = raw(client, "POST", "/report", {**trial, "time": 1, "energy": 1, "metric": 0.9, "current_epoch": 1})
    assert done.json()["stop_train"] is True
    assert raw(client, "PATCH", "/trials", trial).json() == {**trial, "status": "Succeeded"}
