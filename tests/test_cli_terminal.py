"""The real ``bso`` command in a subprocess: widths, units, progress, versions and exit codes."""

import csv
import fcntl
import io
import json
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import sysconfig
import termios
import time
from importlib.metadata import version
from pathlib import Path

import pytest

import httpx

from application.service import BatchSizeOptimizer
from infrastructure.settings import persistence_env
from tests.audit_helpers import ManualClock, train
from tests.helpers import job_spec
from tests.servers import running_server

LONG_JOB = "test-terminal-with-a-job-identifier-longer-than-a-narrow-terminal-allows"
LSTS_JOB = "test-lsts"
WHOLE_SECOND = re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b")


def bso_command() -> list[str]:
    """The installed ``bso`` script beside this interpreter (the one ``pip install`` made)."""
    script = Path(sysconfig.get_path("scripts")) / "bso"
    return [str(script)] if script.exists() else [sys.executable, "-m", "api.cli"]


def bso(*args: str, columns: int = 80, stderr_fd: int | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*bso_command(), *args],
        stdout=subprocess.PIPE,
        stderr=stderr_fd if stderr_fd is not None else subprocess.PIPE,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": str(columns), **env},
    )


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('terminal') / 'terminal.db'}"
    app = BatchSizeOptimizer(env=persistence_env(url), clock=ManualClock())
    try:
        app.register_job(job_spec(job_id=LONG_JOB, job_id_prefix="test"))
        for _ in range(30):
            train(app, LONG_JOB)
        app.register_job(job_spec(job_id="test-young", num_pruning_rounds=2))
        app.predict("test-young")
        app.register_job(job_spec(job_id=LSTS_JOB, policy="lsts"))
        for _ in range(30):
            train(app, LSTS_JOB)
    finally:
        app.close()
    return url


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_version_names_the_distribution() -> None:
    result = bso("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"bso (bso-server) {version('bso-server')}"


def test_jobs_fits_the_terminal_in_human_units_without_the_cursor(database: str) -> None:
    narrow = bso("jobs", "--database-url", database, columns=80)
    assert narrow.returncode == 0, narrow.stderr
    assert widest(narrow.stdout) <= 80
    assert LONG_JOB in narrow.stdout.splitlines()  # too long for its column: a line of its own, never cut
    assert "cursor" not in narrow.stdout and "e+0" not in narrow.stdout
    assert re.search(r"\d(\.\d+)? kJ", narrow.stdout)
    assert WHOLE_SECOND.search(narrow.stdout) and not re.search(r":\d\d\.\d", narrow.stdout)

    wide = bso("jobs", "--wide", "--database-url", database, columns=80)
    assert LONG_JOB in wide.stdout and "job_uuid" in wide.stdout and widest(wide.stdout) > 80

    paged = bso("jobs", "--limit", "1", "--database-url", database)
    hint = re.search(r"^\(more: bso jobs --after (\d+)\)$", paged.stdout, re.MULTILINE)
    assert hint and LONG_JOB[:12] in paged.stdout and "test-young" not in paged.stdout
    assert "test-young" in bso("jobs", "--after", hint.group(1), "--database-url", database).stdout


TABLE_COMMANDS = {  # every command that prints a table, and what each line of it must show whole
    "jobs": ("jobs",),
    "trials": ("trials", LONG_JOB),
    "events": ("events", LONG_JOB, "--limit", "12"),
    "show": ("show", LONG_JOB),
    "replay": ("replay", LONG_JOB),
    "reanalyze": ("reanalyze", LONG_JOB, "--eta-knob", "0.9"),
}


@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize("command", list(TABLE_COMMANDS))
def test_every_table_fits_the_width_without_cutting_an_id(database: str, command: str, columns: int) -> None:
    result = bso(*TABLE_COMMANDS[command], "--database-url", database, columns=columns)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("(more: ")]  # a command to copy
    assert max(map(len, lines)) <= columns, result.stdout
    if command in ("jobs", "show", "replay"):
        assert any(LONG_JOB in line for line in lines), result.stdout
    if command in ("trials", "show", "reanalyze", "events"):
        first = re.compile(r"^(\d+)\s")  # the trial number or event version opens its row, uncut
        header = next(i for i, line in enumerate(lines) if line.split()[:1] in (["number"], ["trial"], ["version"]))
        numbers = [int(match.group(1)) for line in lines[header:] if (match := first.match(line))]
        expected = {"trials": 30, "show": 20, "reanalyze": 20, "events": 12}[command]
        assert len(numbers) == expected and numbers == sorted(numbers), result.stdout
    assert "…" not in "".join(line.split()[0] for line in lines if line.strip())


@pytest.mark.parametrize("command", ["show", "replay", "trials", "events", "reanalyze"])
def test_every_read_of_an_lsts_job_fits_the_width(database: str, command: str) -> None:
    result = bso(command, LSTS_JOB, "--database-url", database, columns=80)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert widest(result.stdout) <= 80, result.stdout
    if command in ("show", "replay"):  # what only Zeus's policy has is said so, beside LSTS's own
        assert "pruning: none: the lsts policy does not prune" in result.stdout
        assert "local search: done, explored 32, " in result.stdout and "early stop: bound " in result.stdout


@pytest.mark.parametrize("command", ["jobs", "trials", "events", "show", "replay", "reanalyze"])
def test_every_table_command_prints_csv_and_json_of_its_rows(database: str, command: str) -> None:
    args = (*TABLE_COMMANDS[command], "--database-url", database)
    table = bso(*args, "--format", "csv")
    assert table.returncode == 0, table.stderr
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    as_json = json.loads(bso(*args, "--format", "json").stdout)
    assert json.loads(bso(*args, "--json").stdout) == as_json  # the older flag, kept for scripts
    if command == "jobs":
        assert [row["job_id"] for row in rows] == [job["job_id"] for job in as_json["jobs"]]
        assert LONG_JOB in [row["job_id"] for row in rows]
    elif command == "trials":
        assert [row["number"] for row in rows] == [str(trial["number"]) for trial in as_json] == list(map(str, range(1, 31)))
    elif command == "events":
        assert [row["version"] for row in rows] == [str(event["version"]) for event in as_json]
        assert [json.loads(row["payload"]) for row in rows] == [event["payload"] for event in as_json]
    elif command == "show":  # the rows are the trials; the state is one record
        assert [row["number"] for row in rows] == [str(trial["number"]) for trial in as_json["trial_list"]]
    elif command == "replay":  # the rows are the arms
        assert [row["batch_size"] for row in rows] == [str(arm["batch_size"]) for arm in as_json["arms"]]
    else:
        assert [row["trial"] for row in rows] == [str(trial["number"]) for trial in as_json["trials"]]
    assert len(rows) > 0


def test_show_gives_the_spec_and_the_last_trials_in_units(database: str) -> None:
    shown = bso("show", LONG_JOB, "--limit", "5", "--database-url", database, columns=100)
    assert shown.returncode == 0, shown.stderr
    assert widest(shown.stdout) <= 100
    assert "metric: target 0.5, higher is better, max 10 epochs" in shown.stdout
    assert "batch sizes: 8, 16, 32, 64 (default 32)" in shown.stdout
    assert "pruning: done (2 rounds)" in shown.stdout
    assert "(the last 5 of 30 trials: --limit 30 for all)" in shown.stdout
    trial_lines = [line for line in shown.stdout.splitlines() if re.match(r"^(2[6-9]|30)\s", line)]
    assert len(trial_lines) == 5 and all(re.search(r" (s|min) .* k?J ", line) for line in trial_lines)

    young = bso("show", "test-young", "--database-url", database)
    assert "pruning: round 1 of 2" in young.stdout
    state = json.loads(bso("show", "test-young", "--json", "--database-url", database).stdout)
    assert state["pruning"]["round"] == 1 and state["pruning"]["done"] is False
    done = json.loads(bso("show", LONG_JOB, "--json", "--database-url", database).stdout)
    assert done["pruning"] == {**done["pruning"], "round": None, "rounds_done": 2, "done": True}
    assert len(done["trial_list"]) == 30  # JSON has every trial unless --limit is given
    assert '"inf"' not in json.dumps(done)


def test_events_cut_payloads_to_the_width_and_page(database: str) -> None:
    events = bso("events", LONG_JOB, "--limit", "5", "--database-url", database, columns=90)
    assert events.returncode == 0
    *table, hint = events.stdout.splitlines()
    assert len(table) == 6 and max(map(len, table)) <= 90 and all(line.endswith("…") for line in table[1:])
    assert hint == f"(more: bso events {LONG_JOB} --after 5)"  # a command to copy: never cut
    full = bso("events", LONG_JOB, "--limit", "5", "--wide", "--database-url", database, columns=90)
    assert widest(full.stdout) > 90 and '"job_id":"' + LONG_JOB in full.stdout


def test_reanalyze_says_early_stopping_is_off(database: str) -> None:
    result = bso("reanalyze", LONG_JOB, "--beta-knob", "none", "--database-url", database, columns=100)
    assert result.returncode == 0, result.stderr
    assert "knobs: beta_knob 2.0 -> off" in result.stdout
    assert widest(result.stdout) <= 100 and "(the first 20 of 30 trials" in result.stdout
    report = json.loads(bso("reanalyze", LONG_JOB, "--beta-knob", "none", "--json", "--database-url", database).stdout)
    assert report["knobs"]["counterfactual"]["beta_knob"] is None


def test_unknown_job_is_exit_1_and_a_bad_flag_exit_2(database: str) -> None:
    unknown = bso("show", "no-such-job", "--database-url", database)
    assert unknown.returncode == 1 and "Unknown job(no-such-job)" in unknown.stderr
    assert bso("jobs", "--limit", "0", "--database-url", database).returncode == 2


def test_export_of_an_unknown_job_leaves_no_file(database: str, tmp_path: Path) -> None:
    target = tmp_path / "job.jsonl"
    result = bso("export", "no-such-job", "-o", str(target), "--database-url", database)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "Unknown job(no-such-job)" in result.stderr
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    assert bso("export", LONG_JOB, "-o", str(target), "--database-url", database).returncode == 0
    assert len(target.read_text().splitlines()) > 30 and list(tmp_path.iterdir()) == [target]


def test_serve_on_a_busy_port_fails_in_one_line_before_creating_the_database(tmp_path: Path) -> None:
    database = tmp_path / "never.db"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = bso("serve", "--port", str(port), "--database-url", f"sqlite:///{database}")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in result.stderr and "in use" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_simulate_against_a_server_that_is_down_says_so_in_one_line() -> None:
    result = bso("simulate", "--url", "http://127.0.0.1:9", "--recurrences", "2")
    assert result.returncode != 0 and result.stderr.count("\n") == 1, result.stderr
    assert "127.0.0.1:9" in result.stderr and "Traceback" not in result.stderr


SIMULATION = ("simulate", "--workload", "sentiment140", "--recurrences", "3", "--json")


def test_simulate_names_its_job_as_asked_in_process(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'simulated.db'}"
    for name, prefix in [("sentiment-nightly-7", "sentiment-nightly"), ("nightly", "nightly")]:
        result = bso(*SIMULATION, "--job-id", name, "--database-url", database)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["job_id"] == report["spec"]["job_id"] == name and report["spec"]["job_id_prefix"] == prefix
        state = json.loads(bso("show", name, "--json", "--database-url", database).stdout)
        assert state["spec"]["job_id_prefix"] == prefix and state["trials"]["total"] == len(report["runs"])
    generated = json.loads(bso(*SIMULATION).stdout)["job_id"]
    assert re.fullmatch(r"simulate-[0-9a-f]{8}", generated)
    for bad in ("two words", "x" * 129, "y" * 111):  # a bad character, too long, a prefix too long
        refused = bso(*SIMULATION, "--job-id", bad, "--database-url", database)
        assert refused.returncode == 2 and refused.stdout == "" and refused.stderr.count("\n") == 1, refused.stderr
        assert "--job-id" in refused.stderr and "Traceback" not in refused.stderr


def test_simulate_names_its_job_as_asked_over_http(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'served.db'}", tmp_path) as server:
        result = bso(*SIMULATION, "--url", server.url, "--job-id", "remote-sentiment-1")
        assert result.returncode == 0, result.stderr
        state = httpx.get(f"{server.url}/v1/jobs/remote-sentiment-1").json()
    assert json.loads(result.stdout)["job_id"] == "remote-sentiment-1"
    assert state["spec"]["job_id_prefix"] == "remote-sentiment" and state["trials"]["total"] >= 3


def test_simulate_plot_without_matplotlib_fails_before_simulating(tmp_path: Path) -> None:
    hidden = tmp_path / "no-matplotlib" / "matplotlib"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('matplotlib is not installed here')\n")
    path_entries = [str(hidden.parent), os.environ.get("PYTHONPATH", "")]
    started = time.monotonic()
    result = bso("simulate", "--plot", str(tmp_path / "out.png"), PYTHONPATH=os.pathsep.join(filter(None, path_entries)))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "bso-server[plot]" in result.stderr
    assert time.monotonic() - started < 30 and not (tmp_path / "out.png").exists()


def test_simulate_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    args = ("simulate", "--workload", "sentiment140", "--recurrences", "4")
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    try:
        on_terminal = bso(*args, stderr_fd=terminal)
        os.close(terminal)
        shown = _drain(controller)
    finally:
        os.close(controller)
    assert on_terminal.returncode == 0
    assert "simulate" in shown and "4/4" in shown and "recurrence" in shown
    piped = bso(*args)
    assert piped.returncode == 0 and piped.stderr == ""
    assert widest(piped.stdout) <= 80 and re.search(r"\d [kMG]?J .*\d (s|min|h) ", piped.stdout)
    assert bso(*args, "--json", stderr_fd=None).stderr == ""


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal's other end is closed and read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
