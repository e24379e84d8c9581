"""Whatever a client sends, the answer is never a 5xx and never a stack trace."""

import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from infrastructure.settings import Settings

ODD_VALUES = [None, -1, 0, 1e308, -1e308, "x", "", [], {}, True, 2**70, "1e3", "NaN", " 5", 1.5]
SPEC = {"job_id": "odd-1", "job_id_prefix": "odd", "batch_sizes": [8, 16], "default_batch_size": 8,
        "max_power": 300, "number_of_gpus": 1, "gpu_model": "x", "max_epochs": 3}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url="memory://")), raise_server_exceptions=False) as test_client:
        assert test_client.post("/jobs", content=json.dumps(SPEC)).status_code == 201
        yield test_client


def assert_client_error_at_most(response) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize("field", sorted(SPEC))
def test_odd_registration_values(client: TestClient, field: str) -> None:
    for value in ODD_VALUES:
        assert_client_error_at_most(client.post("/jobs", content=json.dumps({**SPEC, "job_id": None, field: value})))


@pytest.mark.parametrize("field", ["job_id", "batch_size", "trial_number", "time", "energy", "metric", "current_epoch"])
def test_odd_report_and_end_values(client: TestClient, field: str) -> None:
    trial = client.get("/jobs/batch_size", params={"job_id": "odd-1"}).json()
    for value in ODD_VALUES:
        body = json.dumps({**trial, "time": 1, "energy": 1, "metric": 0.1, "current_epoch": 1, field: value})
        assert_client_error_at_most(client.post("/report", content=body))
        assert_client_error_at_most(client.patch("/trials", content=body))


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs?limit=abc", "/v1/jobs?limit=-1", "/v1/jobs?limit=100000000000", "/v1/jobs?after=zz",
        "/v1/jobs/odd-1/state?version=abc", "/v1/jobs/odd-1/state?version=-1",
        "/v1/jobs/odd-1/state?version=99999999999999999999", "/v1/jobs/odd-1/state?at=garbage",
        "/v1/jobs/odd-1/state?at=2026-13-01T00:00:00", "/v1/jobs/odd-1/state?version=1&at=2020-01-01",
        "/v1/jobs/odd-1/trials/0", "/v1/jobs/odd-1/trials/abc", "/v1/jobs/odd-1/trials/99999999999999999999",
        "/v1/jobs/odd-1/events?after=-1&limit=0", "/v1/jobs/00000000-0000-0000-0000-000000000000",
        "/jobs/batch_size?job_id=" + "x" * 5000,
    ],
)
def test_odd_queries(client: TestClient, path: str) -> None:
    assert_client_error_at_most(client.get(path))


@pytest.mark.parametrize(
    "body",
    ["[]", "null", '{"eta_knob": "x"}', '{"mab_seed": -1}', '{"window_size": 1e400}', '{"resample_seed": "a"}',
     '{"beta_knob": 0}', '{"num_pruning_rounds": 50}'],
)
def test_odd_reanalysis_bodies(client: TestClient, body: str) -> None:
    assert_client_error_at_most(client.post("/v1/jobs/odd-1/reanalysis", content=body))
