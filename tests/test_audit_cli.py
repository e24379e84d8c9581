"""The audit and reanalysis subcommands, run through ``bso``'s own entry point."""

import json
import re
from pathlib import Path

import pytest

from api.cli import main
from api.cli.terminal import energy
from application.service import BatchSizeOptimizer
from domain.spec import POLICIES
from infrastructure.settings import persistence_env
from tests.audit_helpers import ManualClock, linear_workload, train
from tests.helpers import job_spec


@pytest.fixture(params=POLICIES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store with a job of 12 recurrences, under each policy, and a job not yet run."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    app = BatchSizeOptimizer(env=persistence_env(url), clock=ManualClock())
    try:
        app.register_job(job_spec(job_id="test-cli", policy=request.param))
        for _ in range(12):
            train(app, "test-cli")
        app.register_job(job_spec(job_id="other-1", job_id_prefix="other", policy=request.param))
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
    assert replayed == {key: value for key, value in json.loads(shown).items() if key not in ("summary", "trial_list")}
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


def test_show_answers_which_batch_size_whether_settled_and_what_it_saved(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run(capsys, "show", "test-cli", "--database-url", database)
    assert code == 0 and err == ""
    _, as_json, _ = run(capsys, "show", "test-cli", "--json", "--database-url", database)
    summary = json.loads(as_json)["summary"]
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80
    labels = [line.split(":", 1)[0].strip() for line in lines if re.match(r"^ *[a-z ]+: ", line)]
    assert labels[:6] == ["job", "uuid", "use now", "because", "settled", "savings"]  # first, after the ids
    assert f"use now: batch size {summary['recommended_batch_size']}" in out
    settled = f"yes, on batch size {summary['recommended_batch_size']} since trial {summary['settled_since_trial']}"
    assert (settled if summary["settled"] else "settled: not yet") in out
    table = next(i for i, line in enumerate(lines) if line.split()[:2] == ["actual", "default_estimate"])
    assert [line.split()[0] for line in lines[table + 1 : table + 4]] == ["energy", "time", "cost"]
    assert f"{summary['savings']['cost']['fraction']:.1%} of the cost" in out
    assert "early stop: bound " in out and "stopped in a row: 0" in out

    code, out, _ = run(capsys, "show", "other-1", "--database-url", database)  # nothing run yet
    assert code == 0
    assert "savings: unknown: the default batch size (32) never converged" in " ".join(out.split())
    assert "settled: not yet" in out and "default_estimate" not in out


def test_every_read_works_on_the_job_under_its_policy(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "show", "test-cli", "--json", "--database-url", database)
    policy = json.loads(out)["policy"]
    reads = [
        ["jobs"], ["show", "test-cli"], ["show", "other-1"], ["events", "test-cli"], ["trials", "test-cli"],
        ["replay", "test-cli"], ["replay", "test-cli", "--version", "3"], ["reanalyze", "test-cli"],
        ["reanalyze", "test-cli", "--policy", "zeus" if policy == "lsts" else "lsts"],
    ]
    for read in reads:
        for output in ("table", "csv", "json"):
            code, out, err = run(capsys, *read, "--format", output, "--database-url", database)
            assert (code, err) == (0, "") and out, (read, output, err)
    assert run(capsys, "export", "test-cli", "-o", str(tmp_path / "job.jsonl"), "--database-url", database)[0] == 0
    code, out, _ = run(capsys, "show", "test-cli", "--database-url", database)
    if policy == "lsts":  # pruning is Zeus's: said so, beside LSTS's own walk
        assert "pruning: none: the lsts policy does not prune" in out and "local search: done, explored " in out
    else:
        assert "pruning: done (2 rounds)" in out and "local search" not in out
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    assert run(capsys, "import", str(tmp_path / "job.jsonl"), "--database-url", target)[0] == 0
    assert run(capsys, "show", "test-cli", "--database-url", target)[1] == out


def test_reanalyze_prices_both_sides_alike_and_takes_every_knob_as_a_flag(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "reanalyze", "test-cli", "--eta-knob", "0.9", "--wide", "--database-url", database)
    assert code == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.split()[:1] in (["actual"], ["counterfactual"])}
    _, report, _ = run(capsys, "reanalyze", "test-cli", "--eta-knob", "0.9", "--json", "--database-url", database)
    summary = json.loads(report)["summary"]
    assert summary["decision_changes"] == 0  # the same decisions at eta 0.9...
    assert rows["actual"] == rows["counterfactual"]  # ...so the same trials, energy, time and cost
    assert summary["actual"]["cost"] == 0.9 * summary["actual"]["energy"] + (1 - 0.9) * 300.0 * summary["actual"]["time"]
    assert "both sides priced alike: eta_knob 0.9, max_power 300.0 W" in out

    flags = ["--no-skip-up", "--bound-escalation", "--no-predictive-stop", "--stop-window", "5", "--policy", "lsts"]
    code, report, _ = run(capsys, "reanalyze", "test-cli", *flags, "--json", "--database-url", database)
    counterfactual = json.loads(report)["knobs"]["counterfactual"]
    assert code == 0
    assert {key: counterfactual[key] for key in ("skip_up", "bound_escalation", "predictive_stop", "stop_window", "policy")} == {
        "skip_up": False, "bound_escalation": True, "predictive_stop": False, "stop_window": 5, "policy": "lsts",
    }
    with pytest.raises(SystemExit) as refused:
        main(["reanalyze", "test-cli", "--policy", "greedy", "--database-url", database])
    assert refused.value.code == 2 and "--policy: invalid choice: 'greedy'" in capsys.readouterr().err


def growing_workload(batch_size: int, epoch: int, trial_number: int) -> tuple[float, float, float]:
    """Every run costs three times the one before: the bound stops every run after the first."""
    time, energy, metric = linear_workload(batch_size, epoch, trial_number)
    return time * 3**trial_number, energy * 3**trial_number, metric


@pytest.mark.parametrize("policy", POLICIES)
def test_show_gives_the_early_stop_bound_and_warns_when_it_stops_run_after_run(
    policy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'growing.db'}"
    app = BatchSizeOptimizer(env=persistence_env(url), clock=ManualClock())
    try:
        app.register_job(job_spec(job_id="test-grow", policy=policy, bound_escalation=False))
        for _ in range(4):
            train(app, "test-grow", growing_workload)
    finally:
        app.close()
    code, out, _ = run(capsys, "show", "test-grow", "--database-url", url)
    early_stop = json.loads(run(capsys, "show", "test-grow", "--json", "--database-url", url)[1])["early_stop"]
    assert code == 0 and early_stop["stopped_in_a_row"] == 3
    text = " ".join(out.split())
    assert f"early stop: bound {energy(early_stop['bound'])} = {early_stop['factor_name']} {early_stop['factor']} x " in text
    assert "stopped in a row: 3" in text and f"warning: {early_stop['warning']}" in text
