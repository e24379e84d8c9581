"""Optional bearer-token authentication and the refusal to expose an open server."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from infrastructure.settings import Settings, SettingsError
from tests.helpers import CLIENT_SPEC as SPEC

TOKEN = "s3cret-token"
GOOD = {"Authorization": f"Bearer {TOKEN}"}


def client_with(**settings: object) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url="memory://", **settings)), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def guarded() -> Iterator[TestClient]:
    yield from client_with(auth_token=TOKEN)


def test_mutating_routes_need_the_token(guarded: TestClient) -> None:
    body = json.dumps({**SPEC, "job_id": "api-auth"})
    assert guarded.post("/jobs", content=body).status_code == 401
    wrong = guarded.post("/jobs", content=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert guarded.post("/jobs", content=body, headers=GOOD).status_code == 201
    assert guarded.get("/jobs/batch_size", params={"job_id": "api-auth"}).status_code == 401
    trial = guarded.get("/jobs/batch_size", params={"job_id": "api-auth"}, headers=GOOD).json()
    assert guarded.patch("/trials", content=json.dumps(trial)).status_code == 401
    assert guarded.delete("/jobs", params={"job_id": "api-auth"}).status_code == 401
    assert guarded.delete("/jobs", params={"job_id": "api-auth"}, headers=GOOD).status_code == 200


def test_reads_and_health_stay_open_unless_reads_are_protected(guarded: TestClient) -> None:
    assert guarded.get("/v1/jobs").status_code == 200
    assert guarded.get("/healthz").status_code == 200
    for client in client_with(auth_token=TOKEN, auth_reads=True):
        assert client.get("/v1/jobs").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/v1/jobs", headers=GOOD).status_code == 200
        assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    Settings(host=host).check_exposure()


def test_other_addresses_need_a_token_or_an_explicit_opt_out() -> None:
    with pytest.raises(SettingsError, match="BSO_AUTH_TOKEN"):
        Settings(host="0.0.0.0").check_exposure()
    Settings(host="0.0.0.0", auth_token=TOKEN).check_exposure()
    Settings(host="0.0.0.0", allow_unauthenticated=True).check_exposure()


def test_auth_settings_from_the_environment() -> None:
    settings = Settings.from_env({"BSO_AUTH_TOKEN": TOKEN, "BSO_AUTH_READS": "yes"})
    assert (settings.auth_token, settings.auth_reads) == (TOKEN, True)
    with pytest.raises(SettingsError, match="BSO_AUTH_READS"):
        Settings.from_env({"BSO_AUTH_READS": "maybe"})


def test_serve_refuses_an_open_non_loopback_address_before_binding() -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("BSO_")}
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--host", "0.0.0.0", "--database-url", "memory://"],
        capture_output=True, text=True, timeout=60, env=environment, cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 2
    assert "BSO_AUTH_TOKEN" in result.stderr and "Traceback" not in result.stderr

