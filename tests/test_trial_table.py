"""The reads behind the dashboard: trials at a past moment and with their why, the one
trial table shared by ``trials.csv``, ``bso trials`` and the Python client, the richer
job list, and the pages served without a token while the data still needs one."""

import csv
import io
import json
from pathlib import Path
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from api.cli import main
from api.client import BsoClientError, Client
from api.http.app import create_app
from api.trial_table import COLUMN_NAMES
from application.audit import JobAudit, TrialFold, trial_row
from application.service import BatchSizeOptimizer
from domain.spec import POLICIES
from infrastructure.settings import Settings, persistence_env
from tests.audit_helpers import ManualClock, train
from tests.helpers import job_spec
from tests.servers import ServerProcess, running_server

TOKEN = "dashboard-token"
JOB = "test-table"


def _scripted_history(optimizer: BatchSizeOptimizer, policy: str) -> None:
    """The policy's search (Zeus's pruning: sizes below 16 never converge; LSTS's walk), the
    bandit, one ended trial, one in flight."""
    optimizer.register_job(job_spec(job_id=JOB, policy=policy))
    for _ in range(12):
        train(optimizer, JOB)
    ended = optimizer.predict(JOB)
    optimizer.end_trial(JOB, ended["trial_number"], ended["batch_size"])
    optimizer.predict(JOB)


@pytest.fixture(params=POLICIES)
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    optimizer = BatchSizeOptimizer(env=persistence_env("memory://"), clock=ManualClock())
    _scripted_history(optimizer, request.param)
    try:
        with TestClient(create_app(Settings(database_url="memory://"), optimizer=optimizer)) as test_client:
            yield test_client
    finally:
        optimizer.close()


def test_trials_as_they_were_at_a_version_or_instant(client: TestClient) -> None:
    now = client.get(f"/v1/jobs/{JOB}/trials").json()["trials"]
    assert len(now) == 14 and now[-1]["status"] == "Dispatched" and now[-2]["stop_reason"] == "ended"
    early = client.get(f"/v1/jobs/{JOB}/state", params={"version": 6}).json()
    then = client.get(f"/v1/jobs/{JOB}/trials", params={"version": 6}).json()["trials"]
    assert 0 < len(then) < len(now)
    assert len(then) == early["trials"]["total"]
    at = client.get(f"/v1/jobs/{JOB}/trials", params={"at": early["updated_at"]}).json()["trials"]
    assert at == then
    for query, field in [({"version": "0"}, "query.version"), ({"why": "maybe"}, "query.why"), ({"version": "2", "at": "2024-05-01T00:00:00Z"}, "query")]:
        refused = client.get(f"/v1/jobs/{JOB}/trials", params=query)
        assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == field
    assert client.get(f"/v1/jobs/{JOB}/trials", params={"version": 10_000}).status_code == 404


def test_trials_with_why_carry_the_recorded_reason_but_not_the_generator_states(client: TestClient) -> None:
    plain = client.get(f"/v1/jobs/{JOB}/trials").json()["trials"]
    explained = client.get(f"/v1/jobs/{JOB}/trials", params={"why": "true"}).json()["trials"]
    assert "why" not in plain[0]
    assert [{k: v for k, v in trial.items() if k != "why"} for trial in explained] == plain
    policy = client.get(f"/v1/jobs/{JOB}").json()["policy"]
    first, phases = {
        "zeus": ({"stage": "Pruning", "round": 1, "direction": "down"}, ("explore", "thompson")),
        "lsts": ({"policy": "lsts", "phase": "explore", "rule": "walk", "direction": "start", "best": None}, ("bandit",)),
    }[policy]
    assert explained[0]["why"] == first
    bandit = [trial for trial in explained if trial["kind"] == "MAB"]
    assert bandit and all(trial["why"]["phase"] in phases and trial["why"]["arms"] for trial in bandit)
    assert not any(key.startswith("generator_state") for trial in bandit for key in trial["why"])
    for trial in bandit[:2]:  # (LSTS's first bandit trial confirms without a draw: no state before it)
        full = client.get(f"/v1/jobs/{JOB}/trials/{trial['number']}").json()
        states = {key: value for key, value in full["why"].items() if key.startswith("generator_state")}
        assert "generator_state_after" in states and full["why"] == {**trial["why"], **states}


def test_trials_csv_has_one_row_per_trial_with_the_shared_columns(client: TestClient) -> None:
    response = client.get(f"/v1/jobs/{JOB}/trials.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert tuple(rows[0]) == COLUMN_NAMES
    trials = client.get(f"/v1/jobs/{JOB}/trials", params={"why": "true"}).json()["trials"]
    assert [int(row["number"]) for row in rows] == [trial["number"] for trial in trials]
    for column in ("why_stage", "why_direction", "why_phase"):  # each policy's why has some of them
        assert [row[column] for row in rows] == [trial["why"].get(column.removeprefix("why_")) or "" for trial in trials]
    assert any(row["why_phase"] for row in rows)
    assert rows[-1]["status"] == "Dispatched" and rows[-1]["finished_at"] == "" and rows[-1]["cost"] == ""
    assert len(list(csv.DictReader(io.StringIO(client.get(f"/v1/jobs/{JOB}/trials.csv", params={"version": 6}).text)))) < len(rows)
    assert client.get("/v1/jobs/nobody/trials.csv").status_code == 404


def test_job_list_rows_carry_stage_progress_recommendation_and_outcome_counts(client: TestClient) -> None:
    (row,) = client.get("/v1/jobs").json()["jobs"]
    state = client.get(f"/v1/jobs/{JOB}").json()
    if state["policy"] == "zeus":
        assert row["pruning"] == {"round": state["pruning"]["round"], "num_rounds": 2, "done": state["pruning"]["done"]}
        assert row["trials"]["not_converged"] > 0  # sizes below 16 never converge
    else:  # LSTS does not prune
        assert row["pruning"] is None and state["lsts"]["phase"] == "bandit"
    assert row["updated_at"] == state["updated_at"]
    counts = row["trials"]
    assert counts["converged"] + counts["not_converged"] == counts["succeeded"]
    assert counts["failed"] == 1 and counts["dispatched"] == 1
    assert row["recommended_batch_size"] == state["recommendation"]["batch_size"] in state["spec"]["batch_sizes"]
    assert (row["policy"], row["gpu_model"], row["default_batch_size"]) == (state["policy"], state["spec"]["gpu_model"], 32)


def test_pages_need_no_token_but_their_data_does() -> None:
    settings = Settings(database_url="memory://", auth_token=TOKEN, auth_reads=True)
    with TestClient(create_app(settings)) as guarded:
        for path in ("/", f"/ui/jobs/{JOB}", "/docs"):
            page = guarded.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for path in ("/static/dashboard/app.js", "/static/vendor/chartjs/chart.umd.min.js", "/static/vendor/swagger-ui/swagger-ui-bundle.js"):
            assert guarded.get(path).status_code == 200, path
        assert guarded.get("/static/nothing-here.js").status_code == 404
        assert guarded.get("/v1/jobs").status_code == 401
        assert guarded.get(f"/v1/jobs/{JOB}/trials.csv").status_code == 401
        assert guarded.post("/", content="{}").status_code == 401


# -- the same table from the command line and the Python client, over a real server --


@pytest.fixture(scope="module", params=POLICIES)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    folder = tmp_path_factory.mktemp("table")
    url = f"sqlite:///{folder / 'bso.db'}"
    optimizer = BatchSizeOptimizer(env=persistence_env(url), clock=ManualClock())
    try:
        _scripted_history(optimizer, request.param)
    finally:
        optimizer.close()
    with running_server(url, folder, BSO_AUTH_TOKEN=TOKEN, BSO_AUTH_READS="y") as server:
        yield server, url


def test_cli_prints_the_csv_the_route_serves(served: tuple[ServerProcess, str], capsys: pytest.CaptureFixture[str]) -> None:
    server, database_url = served
    with Client(server.url, token=TOKEN) as bso:
        served_csv = bso.http.get(f"/v1/jobs/{JOB}/trials.csv").text
    assert main(["trials", JOB, "--format", "csv", "--database-url", database_url]) == 0
    assert capsys.readouterr().out == served_csv
    assert main(["trials", JOB, "--format", "json", "--version", "6", "--database-url", database_url]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and tuple(rows[0]) == COLUMN_NAMES and len(rows) < 14
    assert main(["trials", JOB, "--database-url", database_url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == list(COLUMN_NAMES) and len(table) == 15
    assert main(["trials", "nobody", "--database-url", database_url]) == 1
    assert "Unknown job(nobody)" in capsys.readouterr().err


def test_python_client_reads_jobs_trials_events_and_reanalyses(served: tuple[ServerProcess, str]) -> None:
    server, _ = served
    with Client(server.url) as anonymous, pytest.raises(BsoClientError) as refused:
        anonymous.job(JOB)
    assert refused.value.status_code == 401
    with Client(server.url, token=TOKEN) as bso:
        assert [job["job_id"] for job in bso.jobs(page_size=1)] == [JOB]
        state = bso.job(JOB)
        assert bso.job(JOB, version=6)["version"] == 6 < state["version"]
        events = bso.events(JOB, page_size=7)
        assert len(events) == state["version"] and [e["version"] for e in events] == list(range(1, state["version"] + 1))
        frame = bso.trials_dataframe(JOB)
        assert tuple(frame.columns) == COLUMN_NAMES and len(frame) == state["trials"]["total"]
        assert str(frame["batch_size"].dtype) == "Int64" and str(frame["converged"].dtype) == "boolean"
        assert str(frame["dispatched_at"].dtype).startswith("datetime64") and frame["finished_at"].isna().iloc[-1]
        assert len(bso.trials_dataframe(JOB, version=6)) < len(frame)
        report = bso.reanalyze(JOB, beta_knob=None, eta_knob=0.9)
        assert report["knobs"]["counterfactual"]["beta_knob"] is None and report["knobs"]["counterfactual"]["eta_knob"] == 0.9
        with pytest.raises(BsoClientError) as bad:
            bso.reanalyze(JOB, eta_knob=2)
        assert bad.value.status_code == 422 and "eta_knob" in bad.value.message


def test_trials_page_by_number_and_filter_by_kind(client: TestClient) -> None:
    every = client.get(f"/v1/jobs/{JOB}/trials", params={"why": "true"}).json()["trials"]
    page = client.get(f"/v1/jobs/{JOB}/trials", params={"why": "true", "after": 3, "limit": 4}).json()["trials"]
    assert page == every[3:7]
    explorations = client.get(f"/v1/jobs/{JOB}/trials", params={"why": "true", "kind": "Exploration"}).json()["trials"]
    assert explorations == [trial for trial in every if trial["kind"] == "Exploration"] and explorations
    refused = client.get(f"/v1/jobs/{JOB}/trials", params={"kind": "Bandit"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "query.kind"


@pytest.mark.parametrize("policy", POLICIES)
def test_trial_history_folds_only_new_events_and_agrees_with_a_fresh_fold(tmp_path: Path, policy: str) -> None:
    """The per-process cache of trial views stays equal to a fold of the whole stream."""
    optimizer = BatchSizeOptimizer(env=persistence_env(f"sqlite:///{tmp_path / 'bso.db'}"), clock=ManualClock())
    try:
        audit = JobAudit(optimizer)
        optimizer.register_job(job_spec(job_id=JOB, policy=policy))
        train(optimizer, JOB)
        def fresh(version: int | None = None) -> list[dict[str, object]]:
            fold = TrialFold()
            fold.apply(audit.domain_events(JOB, version))
            return [trial_row(view, True) for view in fold.views().values()]

        assert audit.trials(JOB, why=True) == fresh()
        version_before = audit.state(JOB)["version"]
        for _ in range(3):
            train(optimizer, JOB)
        running = optimizer.predict(JOB)
        reads: list[tuple[object, int | None]] = []
        original_get = optimizer.repository.event_store.get

        def spy(*args: object, **kwargs: object) -> object:
            reads.append((args[0] if args else kwargs["originator_id"], kwargs.get("gt")))
            return original_get(*args, **kwargs)

        optimizer.repository.event_store.get = spy
        expected, job_uuid = fresh(), audit.resolve(JOB)
        reads.clear()
        assert audit.trials(JOB, why=True) == expected
        stream_reads = [gt for originator, gt in reads if originator == job_uuid]
        assert stream_reads == [version_before]  # only the events appended since the last read
        assert audit.trial(JOB, running["trial_number"])["status"] == "Dispatched"
        assert audit.trials(JOB, version=version_before, why=True) == fresh(version_before)
        assert audit.trials(JOB, why=True) == fresh()
    finally:
        optimizer.close()
