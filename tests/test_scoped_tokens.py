"""Scoped tokens (BSO_TOKENS_FILE): each team's token uses only its own jobs."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from infrastructure.settings import Settings
from infrastructure.tokens import token_digest
from tests.helpers import CLIENT_SPEC
from tests.servers import running_server

TEAM_A, TEAM_A_READER, TEAM_B, ADMIN = "team-a-secret", "team-a-reader-secret", "team-b-secret", "admin-secret"


def entry(name: str, token: str, prefixes: list[str], role: str) -> dict[str, Any]:
    return {"name": name, "sha256": token_digest(token), "prefixes": prefixes, "role": role}


def write_tokens(path: Path, *entries: dict[str, Any]) -> None:
    path.write_text(json.dumps({"tokens": list(entries)}))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    tokens = tmp_path / "tokens.json"
    write_tokens(
        tokens,
        entry("team-a", TEAM_A, ["teama-"], "write"),
        entry("team-a-dashboards", TEAM_A_READER, ["teama-"], "read"),
        entry("team-b", TEAM_B, ["teamb-", "shared-b"], "write"),
    )
    settings = Settings(database_url="memory://", auth_token=ADMIN, tokens_file=str(tokens))
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def as_(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def register(client: TestClient, token: str, job_id: str, prefix: str) -> httpx.Response:
    return client.post("/jobs", json={**CLIENT_SPEC, "job_id": job_id, "job_id_prefix": prefix}, headers=as_(token))


def test_a_team_uses_its_own_jobs_and_no_other(client: TestClient) -> None:
    assert register(client, TEAM_A, "teama-daily", "teama").status_code == 201
    assert register(client, TEAM_B, "teamb-daily", "teamb").status_code == 201
    trial = client.get("/jobs/batch_size", params={"job_id": "teama-daily"}, headers=as_(TEAM_A)).json()
    report = {**trial, "time": 1.0, "energy": 10.0, "metric": 0.9, "current_epoch": 1}
    assert client.post("/report", json=report, headers=as_(TEAM_A)).status_code == 200
    # Team A cannot register under, predict for, report to, end or delete team B's jobs.
    refused = [
        register(client, TEAM_A, "teamb-sneaky", "teamb"),
        client.get("/jobs/batch_size", params={"job_id": "teamb-daily"}, headers=as_(TEAM_A)),
        client.post("/report", json={**report, "job_id": "teamb-daily"}, headers=as_(TEAM_A)),
        client.patch("/trials", json={"job_id": "teamb-daily", "batch_size": 32, "trial_number": 1}, headers=as_(TEAM_A)),
        client.delete("/jobs", params={"job_id": "teamb-daily"}, headers=as_(TEAM_A)),
        client.get("/v1/jobs/teamb-daily", headers=as_(TEAM_A)),
        client.get("/v1/jobs/teamb-daily/trials.csv", headers=as_(TEAM_A)),
        client.post("/v1/jobs/teamb-daily/reanalysis", json={}, headers=as_(TEAM_A)),
    ]
    assert [response.status_code for response in refused] == [403] * len(refused)
    assert "team-a" in refused[1].json()["message"] and "teama-" in refused[1].json()["message"]
    assert client.get("/v1/jobs/teamb-daily", headers=as_(TEAM_B)).status_code == 200
    # A generated id is the prefix and hex digits: the prefix must be the team's.
    assert register(client, TEAM_A, None, "teama").status_code == 201  # type: ignore[arg-type]


def test_another_teams_job_is_refused_alike_whether_or_not_it_exists(client: TestClient) -> None:
    register(client, TEAM_B, "teamb-daily", "teamb")
    existing = client.get("/v1/jobs/teamb-daily", headers=as_(TEAM_A))
    missing = client.get("/v1/jobs/teamb-nothing", headers=as_(TEAM_A))
    assert existing.status_code == missing.status_code == 403
    assert existing.json()["message"].replace("teamb-daily", "X") == missing.json()["message"].replace("teamb-nothing", "X")
    # Addressed by its UUID, the job is still team B's.
    job_uuid = client.get("/v1/jobs/teamb-daily", headers=as_(TEAM_B)).json()["job_uuid"]
    assert client.get(f"/v1/jobs/{job_uuid}", headers=as_(TEAM_A)).status_code == 403
    assert client.get(f"/v1/jobs/{job_uuid}/summary", headers=as_(TEAM_B)).status_code == 200


def test_the_job_list_and_the_fleet_show_a_team_its_own_jobs(client: TestClient) -> None:
    for token, job_id, prefix in [(TEAM_A, "teama-1", "teama"), (TEAM_A, "teama-2", "teama"), (TEAM_B, "teamb-1", "teamb")]:
        assert register(client, token, job_id, prefix).status_code == 201
    listed = {token: [row["job_id"] for row in client.get("/v1/jobs", headers=as_(token)).json()["jobs"]] for token in (TEAM_A, TEAM_B, ADMIN)}
    assert listed == {TEAM_A: ["teama-1", "teama-2"], TEAM_B: ["teamb-1"], ADMIN: ["teama-1", "teama-2", "teamb-1"]}
    sorted_list = client.get("/v1/jobs", params={"sort": "-job_id"}, headers=as_(TEAM_B)).json()["jobs"]
    assert [row["job_id"] for row in sorted_list] == ["teamb-1"]
    assert client.get("/v1/summary", headers=as_(TEAM_A)).json()["overall"]["jobs"] == 2
    assert client.get("/v1/summary", headers=as_(ADMIN)).json()["overall"]["jobs"] == 3


def test_a_read_token_reads_its_jobs_and_writes_nothing(client: TestClient) -> None:
    register(client, TEAM_A, "teama-1", "teama")
    assert client.get("/v1/jobs/teama-1", headers=as_(TEAM_A_READER)).status_code == 200
    written = client.get("/jobs/batch_size", params={"job_id": "teama-1"}, headers=as_(TEAM_A_READER))
    assert written.status_code == 403 and "may only read" in written.json()["message"]
    # Only a token that may write sees what predicts the job's random draws.
    assert "seed" not in client.get("/v1/jobs/teama-1", headers=as_(TEAM_A_READER)).json()
    assert "seed" in client.get("/v1/jobs/teama-1", headers=as_(TEAM_A)).json()


def test_with_a_tokens_file_nothing_but_health_and_pages_is_open(client: TestClient) -> None:
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/jobs/batch_size", params={"job_id": "teama-1"}).status_code == 401
    assert client.get("/v1/jobs", headers=as_("not-a-token")).status_code == 401
    assert client.get("/healthz").status_code == 200 and client.get("/").status_code == 200


def bso(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


def test_a_new_token_works_after_sighup_without_a_restart(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    write_tokens(tokens, entry("team-a", TEAM_A, ["teama-"], "write"))
    with running_server(f"sqlite:///{tmp_path / 'bso.db'}", tmp_path, BSO_TOKENS_FILE=str(tokens)) as server:
        made = bso("token", "new", "team-c", "--prefix", "teamc-", "--role", "write")
        assert made.returncode == 0, made.stderr
        token = re.search(r"keep it secret\): (\S+)", made.stdout).group(1)  # type: ignore[union-attr]
        line = json.loads(made.stdout.split("BSO_TOKENS_FILE: ", 1)[1])
        spec = {**CLIENT_SPEC, "job_id": "teamc-1", "job_id_prefix": "teamc"}
        assert httpx.post(f"{server.url}/jobs", json=spec, headers=as_(token)).status_code == 401
        write_tokens(tokens, entry("team-a", TEAM_A, ["teama-"], "write"), line)
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if httpx.post(f"{server.url}/jobs", json=spec, headers=as_(token)).status_code == 201:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the new token was not accepted within 10 s of SIGHUP")
        # A broken file on the next SIGHUP keeps the tokens in force, and says why in the log.
        tokens.write_text("{not json")
        os.kill(server.process.pid, signal.SIGHUP)
        time.sleep(1)
        assert httpx.get(f"{server.url}/v1/jobs/teamc-1", headers=as_(token)).status_code == 200
        assert "tokens file not reloaded" in server.log_path.read_text()


def test_serve_refuses_a_tokens_file_it_cannot_use_in_one_line(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    write_tokens(tokens, {"name": "team-a", "sha256": "abc", "prefixes": ["teama-"], "role": "write"})
    result = bso("serve", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--port", "0", BSO_TOKENS_FILE=str(tokens))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["bso: tokens[0].sha256 must be 64 hex digits (the SHA-256 of the token)"]
    assert not (tmp_path / "x.db").exists()
