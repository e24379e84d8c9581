"""The commands of the README and of the docs/ pages, run as written, so that they cannot
drift from what works."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from api.http.schemas import JobSpecFromClient
from tests.pgserver import free_port
from tests.servers import running_server

ROOT = Path(__file__).resolve().parent.parent
SEPARATOR = "\x1e"


def page(name: str) -> str:
    """The text of ``README.md`` (``name`` "README") or of ``docs/{name}.md``, where a section lives."""
    return (ROOT / ("README.md" if name == "README" else f"docs/{name}.md")).read_text()


def section(text: str, heading: str, subsections: bool = True) -> str:
    """``heading`` (a line of ``text`` that starts with it) and what follows, up to the next
    heading of its level or above, or with ``subsections`` false up to the next heading
    of any level (a bold lead-in, not being a heading, always ends at the next heading)."""
    found = re.compile(rf"^{re.escape(heading)}", re.MULTILINE).search(text)
    assert found, f"no line starts with {heading!r}"
    level = len(heading) - len(heading.lstrip("#")) if subsections else 0
    # From "##": a line "# ..." is a page's title or, in a shell block, a comment.
    following = re.compile(rf"\n#{{2,{max(level, 2) if level else 6}}} ").search(text, found.end())
    return text[found.start() : following.start() if following else len(text)]


def block_after(heading: str, language: str = "sh", index: int = 0, source: str = "README") -> str:
    """The ``index``-th fenced block of ``language`` after ``heading`` in ``source``, before
    the next heading."""
    within = section(page(source), heading, subsections=False)
    blocks = re.findall(rf"```{language}\n(.*?)```", within, re.DOTALL)
    return blocks[index]


def bso_script() -> str:
    return str(Path(sysconfig.get_path("scripts")) / "bso")


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready")


@contextlib.contextmanager
def process_group(command: list[str], log: Path, cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A command in its own process group, every process of which is stopped by the group's id."""
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                   start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _group_alive(process.pid):
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def contains(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` holds everything ``expected`` shows (objects may hold more keys)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(key in actual and contains(actual[key], value)
                                                for key, value in expected.items())
    return actual == expected


def test_the_quick_start_serves_on_port_8000_with_bso_db_in_the_current_directory(tmp_path: Path) -> None:
    setup, test = block_after("## Quick start", index=0).strip(), block_after("## Quick start", index=1).strip()
    steps = setup.split(" && ")
    assert steps[:3] == ["python -m venv .venv", ". .venv/bin/activate", "python -m pip install -e ."]
    assert steps[3:] == ["bso serve"]
    assert test.split(" && ")[:2] == steps[:2] and test.endswith("python -m pytest")
    assert test in (ROOT / ".ci" / "run").read_text(), ".ci/run runs the README's test command"

    port = free_port()  # the quick start's port 8000 may be taken here: the one thing changed
    environment = {key: value for key, value in os.environ.items() if not key.startswith("BSO_")}
    with process_group([bso_script(), "serve"], tmp_path / "serve.log", tmp_path,
                       {**environment, "BSO_PORT": str(port)}) as server:
        wait_ready(f"http://127.0.0.1:{port}", server)
        assert (tmp_path / "bso.db").exists()
    log = (tmp_path / "serve.log").read_text()
    assert "Event store: sqlite:///bso.db" in log
    assert f"Serving http://127.0.0.1:{port} with 1 worker process(es)" in log


def test_the_curl_session_answers_as_documented(tmp_path: Path) -> None:
    session = block_after("### A first session with curl")
    commands, expected = [], []
    for line in session.strip().splitlines():
        if line.startswith("# -> "):
            expected[-1] = json.loads(line.removeprefix("# -> "))
        else:
            commands.append(line)
            expected.append(None)
    script = "set -e\n" + "".join(f"{command}\nprintf '\\n{SEPARATOR}\\n'\n" for command in commands)
    with running_server(f"sqlite:///{tmp_path / 'session.db'}", tmp_path) as server:
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "BSO": server.url})
        metrics = httpx.get(f"{server.url}/metrics").text
    assert result.returncode == 0, result.stderr
    outputs = result.stdout.split(SEPARATOR)[: len(commands)]
    checked = 0
    for command, output, wanted in zip(commands, outputs, expected):
        if wanted is not None:
            assert contains(json.loads(output), wanted), (command, output)
            checked += 1
    assert checked == 8
    assert 'bso_trials_finished_total{outcome="converged"} 1.0' in metrics
    assert "bso_reanalyses_total 1.0" in metrics


def test_the_job_spec_table_lists_every_field_with_its_default() -> None:
    table = section(page("api"), "## Job spec")
    rows = re.findall(r"^\| `(\w+)` \|([^|]*)\|([^|]*)\|([^|]*)\|", table, re.MULTILINE)
    table = {name: (kind.strip(), default.strip(), bounds.strip()) for name, kind, default, bounds in rows}
    fields = JobSpecFromClient.model_fields
    assert list(table) == list(fields)
    for name, field in fields.items():
        default = table[name][1]
        if field.is_required():
            assert default == "required", name
        elif field.default is None:
            assert default.startswith(("null", "generated")), name
        else:
            assert default == json.dumps(field.default), name
        for constraint in field.metadata:
            for attribute, symbol in (("gt", ">"), ("ge", ">="), ("le", "<=")):
                bound = getattr(constraint, attribute, None)
                if bound is not None:
                    assert f"{symbol} {bound:g}" in table[name][2], (name, attribute, bound)


def test_zeus_client_example_runs_against_bso(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zeus_client = pytest.importorskip("zeus.optimizer.batch_size.client")
    import zeus.monitor

    from tests.test_zeus_client import EpochMonitor, OneV100

    monkeypatch.setattr(zeus_client, "get_gpus", lambda ensure_homogeneous: OneV100())
    monkeypatch.setattr(zeus.monitor, "ZeusMonitor", lambda gpu_indices: EpochMonitor())
    exit_hooks: list = []
    monkeypatch.setattr(zeus_client.atexit, "register", exit_hooks.append)
    example = block_after("## Running Zeus's own client against bso", "python", source="api")
    epochs: list[int] = []
    with running_server(f"sqlite:///{tmp_path / 'zeus.db'}", tmp_path) as server:
        code = example.replace("http://127.0.0.1:8000", server.url)
        for _ in range(2):  # two recurrences of the same script
            exec(code, {"train_one_epoch": epochs.append, "validate": lambda: 0.8})  # noqa: S102
            exit_hooks.pop()()
        trials = httpx.get(f"{server.url}/v1/jobs/resnet-nightly/trials").json()["trials"]
    assert [trial["status"] for trial in trials] == ["Succeeded", "Succeeded"]
    assert [trial["batch_size"] for trial in trials] == [128, 64] and epochs == [128, 64]


def test_two_servers_on_one_postgresql_as_written(postgres_database_url: str, tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    script = block_after("**Two servers on one PostgreSQL.**", source="operations")
    script = script.replace("--port 8001", f"--port {ports[0]}").replace("--port 8002", f"--port {ports[1]}")
    script += "wait\n"  # keep the shell, and so the process group, until the servers stop
    bin_dir = str(Path(bso_script()).parent)
    env = {**os.environ, "BSO_DATABASE_URL": postgres_database_url, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    first, second = (f"http://127.0.0.1:{port}" for port in ports)
    with process_group(["bash", "-c", script], tmp_path / "servers.log", tmp_path, env) as shell:
        wait_ready(first, shell)
        wait_ready(second, shell)
        spec = {"job_id": "two-1", "job_id_prefix": "two", "batch_sizes": [8, 16], "default_batch_size": 16,
                "max_power": 300, "number_of_gpus": 1, "gpu_model": "V100"}
        assert httpx.post(f"{first}/jobs", json=spec).status_code == 201
        trial = httpx.get(f"{second}/jobs/batch_size", params={"job_id": "two-1"}).json()
        assert trial == {"job_id": "two-1", "batch_size": 16, "trial_number": 1}
        assert httpx.get(f"{first}/v1/jobs/two-1").json()["trials"]["total"] == 1
    log = (tmp_path / "servers.log").read_text()
    assert log.count("Event store: postgresql://") == 2
    assert all(f"Serving http://127.0.0.1:{port} with 2 worker process(es)" in log for port in ports)
