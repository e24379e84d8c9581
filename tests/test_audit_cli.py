"""The audit and reanalysis subcommands, run through ``bso``'s own entry point."""

import json
from pathlib import Path

import pytest

from api.cli import main
from application.service import BatchSizeOptimizer
from infrastructure.settings import persistence_env
from tests.audit_helpers import ManualClock, train
from tests.helpers import job_spec


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    app = BatchSizeOptimizer(env=persistence_env(url), clock=ManualClock())
    try:
        app.register_job(job_spec(job_id="test-cli"))
        for _ in range(12):
            train(app, "test-cli")
        app.register_job(job_spec(job_id="other-1", job_id_prefix="other"))
    finally:
        app.close()
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_jobs_table_and_json(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "jobs", "--database-url", database)
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["job_id", "stage", "trials"]
    assert "test-cli" in out and "other-1" in out
    code, out, _ = run(capsys, "jobs", "--prefix", "other", "--json", "--database-url", database)
    assert [job["job_id"] for job in json.loads(out)["jobs"]] == ["other-1"]
    code, out, _ = run(capsys, "jobs", "--limit", "1", "--json", "--database-url", database)
    page = json.loads(out)
    assert len(page["jobs"]) == 1 and page["next_after"] is not None


def test_show_and_events(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "test-cli", "--database-url", database)
    assert code == 0 and "stage: MAB" in out and "Exploration" in out
    code, out, _ = run(capsys, "show", "test-cli", "--json", "--database-url", database)
    state = json.loads(out)
    assert len(state["trial_list"]) == 12
    code, out, _ = run(capsys, "events", "test-cli", "--json", "--database-url", database)
    events = json.loads(out)
    assert [event["version"] for event in events] == list(range(1, state["version"] + 1))
    code, out, _ = run(capsys, "events", "test-cli", "--after", "3", "--limit", "2", "--json", "--database-url", database)
    assert [event["version"] for event in json.loads(out)] == [4, 5]


def test_replay_now_and_at_a_version_with_a_progress_bar(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "replay", "test-cli", "--json", "--progress", "--database-url", database)
    replayed = json.loads(out)
    _, shown, _ = run(capsys, "show", "test-cli", "--json", "--database-url", database)
    assert replayed == {key: value for key, value in json.loads(shown).items() if key != "trial_list"}
    assert "replay" in err and "100%" in err and "event/s" in err  # tqdm's bar, asked for with --progress
    code, out, err = run(capsys, "replay", "test-cli", "--version", "3", "--json", "--database-url", database)
    assert code == 0 and json.loads(out)["version"] == 3 and json.loads(out)["trials"]["total"] == 1
    assert err == ""  # not a terminal, not asked: no bar


def test_export_then_import_into_another_database_then_reanalyse(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "job.jsonl"
    assert run(capsys, "export", "test-cli", "-o", str(export), "--database-url", database)[0] == 0
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    code, out, _ = run(capsys, "import", str(export), "--json", "--database-url", target)
    assert code == 0 and json.loads(out)["job_id_claimed"] is True
    _, original, _ = run(capsys, "show", "test-cli", "--json", "--database-url", database)
    _, copied, _ = run(capsys, "show", "test-cli", "--json", "--database-url", target)
    assert json.loads(copied) == json.loads(original)
    assert run(capsys, "import", str(export), "--database-url", target)[0] == 1  # already there

    code, out, _ = run(capsys, "reanalyze", "test-cli", "--json", "--database-url", target)
    assert code == 0 and json.loads(out)["summary"]["decision_changes"] == 0
    code, out, _ = run(capsys, "reanalyze", "test-cli", "--eta-knob", "0.9", "--beta-knob", "none", "--database-url", target)
    assert code == 0 and "eta_knob 0.5 -> 0.9" in out and "beta_knob 2.0 -> off" in out and "counterfactual" in out


def test_errors_are_messages_with_exit_codes(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "show", "nobody", "--database-url", database)
    assert code == 1 and "Unknown job(nobody)" in err
    code, _, err = run(capsys, "replay", "test-cli", "--version", "9999", "--database-url", database)
    assert code == 1 and "no version 9999" in err
    code, _, err = run(capsys, "reanalyze", "test-cli", "--eta-knob", "2", "--database-url", database)
    assert code == 2 and "eta_knob" in err
