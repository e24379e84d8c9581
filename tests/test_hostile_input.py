"""Hostile and careless input (issue 10): never a 5xx, never a stored change, never a broken view.

Each refusal is checked for its status, a JSON body with a ``message``, nothing
stored (the event log's newest notification is unchanged), and every view of every
job answering 200 with strict JSON afterwards.
"""

import json
import math
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from api.cli import main
from api.http.app import create_app
from application.service import BatchSizeOptimizer
from domain.job import Job
from infrastructure.settings import Settings, persistence_env
from tests.helpers import CLIENT_SPEC
from tests.servers import running_server

ROOT = Path(__file__).resolve().parent.parent
NESTED_ARRAYS = "[" * 1000 + "]" * 1000
HUGE_INTEGER = "9" * 5000
BODY_ROUTES = [("POST", "/jobs"), ("POST", "/report"), ("PATCH", "/trials"), ("POST", "/v1/jobs/api-1/reanalysis")]
TOKEN = "s3cret-token"


def strict_json(text: str) -> Any:
    """Parse as JSON proper: Infinity and NaN are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# -- a served job with some history -------------------------------------------------------


def seed_history(client: TestClient) -> None:
    assert client.post("/jobs", content=json.dumps({**CLIENT_SPEC, "job_id": "api-1"})).status_code == 201
    for epoch_metric in (0.9, 0.1):
        trial = client.get("/jobs/batch_size", params={"job_id": "api-1"}).json()
        report = {**trial, "time": 10.0, "energy": 1000.0, "metric": epoch_metric, "current_epoch": 1}
        assert client.post("/report", content=json.dumps(report)).status_code == 200
    client.get("/jobs/batch_size", params={"job_id": "api-1"})  # one trial left running


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hostile.db'}"


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=sqlite_url)), raise_server_exceptions=False) as test_client:
        seed_history(test_client)
        yield test_client


def newest_notification(client: TestClient) -> int:
    return client.app.state.optimizer.recorder.max_notification_id() or 0


def assert_refused(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = strict_json(response.text)
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"], body
    return body


def all_pages(client: TestClient, path: str, key: str, **headers: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after: Any = None
    for _ in range(1000):
        response = client.get(path, params={} if after is None else {"after": after}, headers=headers)
        assert response.status_code == 200, (path, response.text)
        page = strict_json(response.text)
        items.extend(page[key])
        after = page["next_after"]
        if after is None:
            return items
    raise AssertionError(f"{path} never stopped paging")


def assert_every_view_answers(client: TestClient, reanalysis: bool = True, **headers: str) -> None:
    """Every view of every job (and its reanalysis, a POST that writers may run): 200 with strict JSON."""
    jobs = all_pages(client, "/v1/jobs", "jobs", **headers)
    assert jobs
    for job in jobs:
        base = f"/v1/jobs/{job['job_uuid']}"
        for path in (base, f"{base}/state?version=1", f"/v1/jobs/{job['job_id']}"):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text)
            strict_json(response.text)
        trials = all_pages(client, f"{base}/trials", "trials", **headers)
        for trial in trials:
            response = client.get(f"{base}/trials/{trial['number']}", headers=headers)
            assert response.status_code == 200, response.text
            strict_json(response.text)
        all_pages(client, f"{base}/events", "events", **headers)
        if not reanalysis:
            continue
        response = client.post(f"{base}/reanalysis", content="{}", headers=headers)
        assert response.status_code == 200, response.text
        strict_json(response.text)


# -- 1. stored non-finite numbers never break a view ---------------------------------------


def _replace_floats(value: Any, replacement: float) -> Any:
    if isinstance(value, float):
        return replacement
    if isinstance(value, dict):
        return {key: _replace_floats(item, replacement) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_replace_floats(item, replacement) for item in value)
    return value


def poison_stored_floats(database_url: str, replacement: float) -> None:
    """Rewrite every float of every stored event after registration to ``replacement``, in place."""
    app = BatchSizeOptimizer(env=persistence_env(database_url))
    try:
        records = app.recorder.select_notifications(start=1, limit=100_000)
        rows = []
        for record in records:
            event = app.mapper.to_domain_event(record)
            if type(event).__name__ == "Registered":
                continue
            for name, value in vars(event).items():
                if name not in ("originator_id", "originator_version", "timestamp"):
                    object.__setattr__(event, name, _replace_floats(value, replacement))
            stored = app.mapper.to_stored_event(event)
            rows.append((stored.state, record.originator_id.hex, record.originator_version))
        table = app.recorder.events_table_name
    finally:
        app.close()
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
        connection.executemany(
            f"UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = ?", rows
        )
    # The trial views kept beside the events were folded from them as they were: fold again.
    app = BatchSizeOptimizer(env=persistence_env(database_url))
    try:
        app.rebuild_trial_views({record.originator_id for record in records if record.topic == Job.Registered.TOPIC})
    finally:
        app.close()


@pytest.mark.parametrize("replacement", [math.inf, 1e308, -math.inf, math.nan])
def test_non_finite_stored_numbers_render_as_null_in_every_view(
    sqlite_url: str, replacement: float, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app(Settings(database_url=sqlite_url)), raise_server_exceptions=False) as client:
        seed_history(client)
    poison_stored_floats(sqlite_url, replacement)
    with TestClient(create_app(Settings(database_url=sqlite_url)), raise_server_exceptions=False) as client:
        assert_every_view_answers(client)
        trial = strict_json(client.get("/v1/jobs/api-1/trials/1").text)
    if not math.isfinite(replacement):
        assert trial["time"] is None and trial["epochs"][0]["energy"] is None
    for command in (["jobs"], ["show", "api-1"], ["events", "api-1"], ["replay", "api-1"], ["reanalyze", "api-1"]):
        assert main([*command, "--json", "--database-url", sqlite_url]) == 0
        strict_json(capsys.readouterr().out)


def test_overflowing_report_never_breaks_a_view(client: TestClient) -> None:
    trial = client.get("/jobs/batch_size", params={"job_id": "api-1"}).json()
    report = {**trial, "time": 1e308, "energy": 1e308, "metric": 0.9, "current_epoch": 1}
    response = client.post("/report", content=json.dumps(report))
    assert response.status_code in (200, 422), response.text  # refused or stored: the domain decides
    strict_json(response.text)
    assert_every_view_answers(client)


# -- 2. bodies the JSON parser rejects ------------------------------------------------------


@pytest.mark.parametrize("method,path", BODY_ROUTES)
@pytest.mark.parametrize("body", [NESTED_ARRAYS, HUGE_INTEGER, '{"job_id": ' + NESTED_ARRAYS + "}",
                                  '{"time": ' + HUGE_INTEGER + "}"])
def test_bodies_the_parser_refuses_are_422(client: TestClient, method: str, path: str, body: str) -> None:
    before = newest_notification(client)
    assert_refused(client.request(method, path, content=body), 422)
    assert newest_notification(client) == before
    assert_every_view_answers(client)


@pytest.mark.parametrize("field", ["batch_sizes", "number_of_gpus", "max_epochs", "mab_seed"])
def test_body_numbers_beyond_64_bits_are_422(client: TestClient, field: str) -> None:
    huge = 2**63
    spec = {**CLIENT_SPEC, field: [huge, 32] if field == "batch_sizes" else huge}
    before = newest_notification(client)
    body = assert_refused(client.post("/jobs", content=json.dumps(spec)), 422)
    assert field in body["message"]
    assert newest_notification(client) == before
    assert_every_view_answers(client)


# -- 3 and 4. path and query numbers ------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/api-1/trials/%C2%B2",
        "/v1/jobs/api-1/trials/" + HUGE_INTEGER,
        "/v1/jobs/api-1/trials/%EF%BC%91",  # fullwidth digit one
        "/v1/jobs/api-1/trials/+1",
        "/v1/jobs/api-1/events?after=9999999999999999999",
        "/v1/jobs/api-1/events?after=%C2%B2",
        "/v1/jobs/api-1/events?limit=" + HUGE_INTEGER,
        "/v1/jobs/api-1/state?version=9999999999999999999",
        "/v1/jobs/api-1/trials?after=9999999999999999999",
        "/v1/jobs?after=9999999999999999999",
        "/v1/jobs?limit=%C2%B2",
        "/v1/jobs?limit=0",
        "/v1/jobs?limit=",
        "/v1/jobs/api-1/state?version=",
    ],
)
def test_odd_path_and_query_numbers_are_422(client: TestClient, path: str) -> None:
    before = newest_notification(client)
    body = assert_refused(client.get(path), 422)
    assert "query." in body["message"] or "path." in body["message"]
    assert newest_notification(client) == before
    assert_every_view_answers(client)


def test_largest_cursor_answers_the_same_on_every_store(shared_database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=shared_database_url)), raise_server_exceptions=False) as client:
        seed_history(client)
        largest = str(2**63 - 1)
        for path in ("/v1/jobs/api-1/events", "/v1/jobs/api-1/trials", "/v1/jobs"):
            response = client.get(path, params={"after": largest})
            assert response.status_code == 200, response.text
            assert response.json()["next_after"] is None
            assert_refused(client.get(path, params={"after": str(2**63)}), 422)


def test_cli_refuses_an_oversized_cursor_in_one_line(sqlite_url: str, client: TestClient) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "events", "api-1", "--after", "9" * 20, "--database-url", sqlite_url],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "--after" in done.stderr, done.stderr


# -- 5. reads do not take what commands need -------------------------------------------------


def test_trials_are_paged(client: TestClient) -> None:
    first = client.get("/v1/jobs/api-1/trials", params={"limit": 2}).json()
    assert [trial["number"] for trial in first["trials"]] == [1, 2] and first["next_after"] == 2
    rest = client.get("/v1/jobs/api-1/trials", params={"limit": 2, "after": 2}).json()
    assert [trial["number"] for trial in rest["trials"]] == [3] and rest["next_after"] is None


def test_repeated_read_of_an_unchanged_job_reads_no_events(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    client.get("/v1/jobs/api-1/trials")
    recorder = client.app.state.optimizer.recorder
    reads: list[dict[str, Any]] = []
    original = recorder.select_events

    def counting(*args: Any, **kwargs: Any) -> Any:
        records = original(*args, **kwargs)
        reads.append({"kwargs": kwargs, "records": len(records)})
        return records

    monkeypatch.setattr(recorder, "select_events", counting)
    for path in ("/v1/jobs/api-1/trials", "/v1/jobs/api-1/trials/1", "/v1/jobs/api-1/trials?limit=1"):
        assert client.get(path).status_code == 200
    assert sum(read["records"] for read in reads) <= len(reads)  # at most the newest event, per read
    client.get("/jobs/batch_size", params={"job_id": "api-1"})
    reads.clear()
    assert client.get("/v1/jobs/api-1/trials").json()["trials"][-1]["number"] == 4
    assert max(read["records"] for read in reads) == 1  # newest versions, then only the one new event


def test_concurrent_reanalyses_beyond_the_limit_get_503_with_retry_after(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, max_reanalyses=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        seed_history(client)
        gate = client.app.state.reanalysis_slots
        assert gate.acquire(blocking=False)  # another reanalysis is running
        try:
            response = client.post("/v1/jobs/api-1/reanalysis", content="{}")
            assert_refused(response, 503)
            assert int(response.headers["retry-after"]) >= 1
        finally:
            gate.release()
        assert client.post("/v1/jobs/api-1/reanalysis", content="{}").status_code == 200


# -- 7 and 9. safe methods, and 405s keep Allow --------------------------------------------


def test_head_on_predict_dispatches_nothing(client: TestClient) -> None:
    before = newest_notification(client)
    response = client.head("/jobs/batch_size", params={"job_id": "api-1"})
    assert response.status_code == 405 and response.headers["allow"] == "GET"
    assert newest_notification(client) == before
    assert client.get("/jobs/batch_size", params={"job_id": "api-1"}).status_code == 200
    assert_every_view_answers(client)


@pytest.mark.parametrize("method,path", [("PUT", "/jobs"), ("GET", "/report"), ("DELETE", "/v1/jobs/api-1")])
def test_405_keeps_the_allow_header(client: TestClient, method: str, path: str) -> None:
    before = newest_notification(client)
    response = client.request(method, path)
    assert_refused(response, 405)
    assert response.headers.get("allow")
    assert newest_notification(client) == before


# -- generator state is for writers -----------------------------------------------------------


def test_generator_state_only_for_callers_allowed_to_write(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, auth_token=TOKEN, read_token="reader")
    writer = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(writer)
        seed_history(client)
        client.headers.pop("Authorization")
        reader = {"Authorization": "Bearer reader"}
        assert client.get("/v1/jobs/api-1").status_code == 401  # a read token is set: reads need one
        for headers, shown in ((reader, False), (writer, True)):
            state = client.get("/v1/jobs/api-1", headers=headers).json()
            trial = client.get("/v1/jobs/api-1/trials/1", headers=headers).json()
            events = client.get("/v1/jobs/api-1/events", headers=headers).text
            assert ("generator_state" in state) is shown
            assert ("generator_state_after" in trial["why"]) is shown
            assert ("generator_state" in events) is shown
        refused = client.post("/jobs", content=json.dumps(CLIENT_SPEC), headers=reader)
        assert refused.status_code == 403 and "may only read" in refused.json()["message"]
        assert_every_view_answers(client, reanalysis=False, **reader)


# -- 8. unusable stores -------------------------------------------------------------------


def _cli(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _good_database(path: Path) -> str:
    url = f"sqlite:///{path}"
    with TestClient(create_app(Settings(database_url=url))) as client:
        seed_history(client)
    return url


def _damaged(kind: str, tmp_path: Path) -> str:
    path = tmp_path / "store.db"
    if kind in ("truncated", "zeroed", "page-2"):
        _good_database(path)
        data = path.read_bytes()
        if kind == "truncated":
            path.write_bytes(data[:1000])
        elif kind == "zeroed":
            path.write_bytes(bytes(len(data)))
        else:
            path.write_bytes(data[:4096] + os.urandom(4096) + data[8192:])
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    elif kind == "not-sqlite":
        path.write_text("these are not the pages you are looking for\n" * 200)
    elif kind == "directory":
        path.mkdir()
    elif kind == "missing-directory":
        path = tmp_path / "no" / "such" / "store.db"
    return f"sqlite:///{path}"


COMMANDS = [["jobs"], ["show", "api-1"], ["events", "api-1"], ["replay", "api-1"], ["export", "api-1"],
            ["reanalyze", "api-1"], ["init-db"]]
DAMAGE = ["truncated", "zeroed", "page-2", "not-sqlite", "directory", "missing-directory"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_every_command_says_in_one_line_what_is_wrong_with_the_store(kind: str, tmp_path: Path) -> None:
    url = _damaged(kind, tmp_path)
    for command in COMMANDS:
        done = _cli(*command, "--database-url", url)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bso: "), (command, done.stderr)


@pytest.mark.parametrize("kind", DAMAGE)
def test_serve_refuses_an_unusable_store(kind: str, tmp_path: Path) -> None:
    done = _cli("serve", "--port", "1", "--database-url", _damaged(kind, tmp_path))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bso: "), done.stderr


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:1/bso", "postgresql://postgres@unreachable.invalid:5432/bso"]
)
def test_unreachable_postgres_is_one_line(url: str) -> None:
    for command in (["jobs"], ["serve", "--port", "1"], ["init-db"]):
        done = _cli(*command, "--database-url", url)
        assert done.returncode == 2 and done.stderr.startswith("bso: "), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_missing_postgres_database_is_one_line(postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    for command in (["jobs"], ["serve", "--port", "1", "--no-create-schema"], ["init-db"]):
        done = _cli(*command, "--database-url", url)
        assert done.returncode == 2 and done.stderr.startswith("bso: "), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_read_commands_never_create_a_file(tmp_path: Path) -> None:
    for command in COMMANDS[:-1]:
        done = _cli(*command, "--database-url", "sqlite:///typo.db", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.startswith("bso: "), done.stderr
    assert list(tmp_path.iterdir()) == []


def _read_only_mount_works(folder: Path) -> bool:
    done = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder} && "
                           f"mount -o remount,ro,bind {folder}"], capture_output=True, timeout=30)
    return done.returncode == 0


def test_read_commands_work_on_read_only_media(tmp_path: Path) -> None:
    """The database's folder mounted read-only (a private mount namespace): every read command works."""
    folder = tmp_path / "media"
    folder.mkdir()
    url = _good_database(folder / "store.db")
    if shutil.which("unshare") is None or not _read_only_mount_works(folder):
        pytest.skip("no private read-only mount here (needs unshare and mount rights)")
    content = (folder / "store.db").read_bytes()
    for command in COMMANDS[:-1]:
        bso = " ".join([sys.executable, "-m", "api.cli", *command, "--database-url", url])
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder} && "
             f"mount -o remount,ro,bind {folder} && {bso} > /dev/null"],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )
        assert done.returncode == 0, (command, done.stderr)
    assert sorted(path.name for path in folder.iterdir()) == ["store.db"]
    assert (folder / "store.db").read_bytes() == content
    for writer in (["init-db"], ["serve", "--port", "1"]):  # writing there is refused in one line
        bso = " ".join([sys.executable, "-m", "api.cli", *writer, "--database-url", url])
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder} && "
             f"mount -o remount,ro,bind {folder} && {bso}"],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )
        assert done.returncode == 2 and done.stderr.startswith("bso: "), (writer, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_readyz_is_503_when_the_store_cannot_be_read(tmp_path: Path) -> None:
    """A page of a store with a few jobs zeroed: its newest notification id can still be read
    (what readiness used to check), but not its events; the process starts, but is not ready."""
    path = tmp_path / "store.db"
    with TestClient(create_app(Settings(database_url=f"sqlite:///{path}"))) as client:
        seed_history(client)
        for number in range(2, 6):
            client.post("/jobs", content=json.dumps({**CLIENT_SPEC, "job_id": f"api-{number}"}))
            for _ in range(10):
                trial = client.get("/jobs/batch_size", params={"job_id": f"api-{number}"}).json()
                report = {**trial, "time": 1.0, "energy": 1.0, "metric": 0.9, "current_epoch": 1}
                client.post("/report", content=json.dumps(report))
    data = path.read_bytes()
    for page in range(1, len(data) // 4096):  # the first page whose loss leaves the newest id readable
        path.write_bytes(data[: 4096 * page] + bytes(4096) + data[4096 * (page + 1) :])
        app = BatchSizeOptimizer(env=persistence_env(f"sqlite:///{path}"))
        try:
            app.recorder.max_notification_id()
            break
        except Exception:
            continue
        finally:
            app.close()
    with TestClient(create_app(Settings(database_url=f"sqlite:///{path}")), raise_server_exceptions=False) as client:
        assert client.app.state.optimizer.recorder.max_notification_id() > 0
        assert_refused(client.get("/readyz"), 503)
        assert client.get("/healthz").status_code == 200


# -- the body-read timeout and closed pipes ------------------------------------------------


def test_a_half_sent_body_is_closed_within_the_timeout(tmp_path: Path) -> None:
    with running_server("memory://", tmp_path, BSO_BODY_TIMEOUT_SECONDS="1") as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"job_id_prefix\"")
            started = time.monotonic()
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
            elapsed = time.monotonic() - started
        assert elapsed < 5, elapsed
        if answer:
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b'"message"' in answer


def test_closed_pipe_ends_quietly(sqlite_url: str, client: TestClient) -> None:
    for command in ("replay", "show", "events"):
        done = subprocess.run(
            f"{sys.executable} -m api.cli {command} api-1 --json --database-url {sqlite_url} | head -c 10",
            shell=True, capture_output=True, text=True, cwd=ROOT, timeout=60,
        )
        assert "Traceback" not in done.stderr and "Error" not in done.stderr, done.stderr


# -- 10. the OpenAPI document is as strict as the server --------------------------------------


def test_document_states_bounds_types_answers_and_declares_the_bearer_scheme(client: TestClient) -> None:
    document = strict_json(client.get("/openapi.json").text)
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["bearer"]["description"]
    }
    paths = document["paths"]
    parameters = {
        (path, parameter["name"]): parameter["schema"]
        for path, operations in paths.items() for operation in operations.values()
        for parameter in operation.get("parameters", [])
    }
    assert parameters[("/jobs/batch_size", "job_id")]["minLength"] == 1
    assert parameters[("/v1/jobs", "limit")] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert parameters[("/v1/jobs/{job_id}/state", "version")]["minimum"] == 1
    assert parameters[("/v1/jobs/{job_id}/trials/{number}", "number")]["minimum"] == 1
    assert parameters[("/v1/jobs/{job_id}/events", "after")]["maximum"] == 2**63 - 1
    knobs = document["components"]["schemas"]["ReanalysisKnobs"]["properties"]["beta_knob"]
    assert {"type": "number", "exclusiveMinimum": 0.0} in knobs["anyOf"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert "security" in operation, (method, path)
            if path.startswith("/v1") and not path.endswith(".csv"):
                assert "$ref" in operation["responses"]["200"]["content"]["application/json"]["schema"], path
                takes_input = "requestBody" in operation or any(p["name"] != "job_id" for p in operation.get("parameters", []))
                assert ("422" in operation["responses"]) == takes_input, path
            # This server has no token: nothing needs one (tests/test_openapi.py checks the others).
            assert operation["security"] == [] and "401" not in operation["responses"], (method, path)
