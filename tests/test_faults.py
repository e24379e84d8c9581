"""Faults injected for real under a running ``bso serve``: a deleted or replaced SQLite file,
a SQLite write lock held for seconds, PostgreSQL stopped and started, the supervisor killed
with SIGKILL, SIGTERM while the store is away, slow and huge request heads, a flood of
connections. Every server and PostgreSQL started here is stopped by its PID, also on failure.

Lines starting with ``FIGURE`` (``pytest -s``) are the measurements docs/operations.md "Faults and
limits" quotes.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from bench.hammer import job_spec, measurements
from infrastructure.settings import Settings, SettingsError
from tests import pgserver
from tests.servers import ServerProcess, running_server

ROOT = Path(__file__).resolve().parent.parent


def figure(text: str) -> None:
    print(f"FIGURE {text}")


# -- helpers -------------------------------------------------------------------------------


def port_of(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


def register(url: str, job_id: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/jobs", content=json.dumps(job_spec(job_id)), timeout=30)
    assert response.status_code == 201, response.text
    trial = httpx.get(f"{url}/jobs/batch_size", params={"job_id": job_id}, timeout=30)
    assert trial.status_code == 200, trial.text
    return trial.json()


def report_body(trial: dict[str, Any], epoch: int = 1) -> str:
    return json.dumps({**trial, **measurements(trial["batch_size"], epoch)})


def raw_exchange(port: int, request: bytes, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Send ``request`` on a fresh connection; return the answer's bytes and whether the server
    closed the connection after it (what a keep-alive client's next request would meet)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        answer = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                return answer, True
            except socket.timeout:
                return answer, False
            if not chunk:
                return answer, True
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            if _ and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:  # the whole answer: does the server close now?
                    connection.settimeout(2.0)
                    try:
                        return answer, connection.recv(1) == b""
                    except ConnectionResetError:
                        return answer, True
                    except socket.timeout:
                        return answer, False
        return answer, False


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def pid_state(pid: int) -> str | None:
    """The process's state letter, or None if it is gone (a zombie is gone for our purposes)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if state in ("Z", "X") else state


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def wait_for_workers(supervisor: int, count: int, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = children_of(supervisor)
        if len(workers) >= count:
            return workers
        time.sleep(0.1)
    raise TimeoutError(f"{count} workers of [{supervisor}] not found")


def wait_for_startup(server: ServerProcess, workers: int = 2, timeout: float = 60.0) -> None:
    """Every worker has started (readiness answers from the first one up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.log_path.read_text().count("Application startup complete.") >= workers:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{workers} workers not started:\n{server.log_path.read_text()}")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def kill_group(server: ServerProcess) -> None:
    """SIGKILL whatever is left of the server's process group (orphaned workers included)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=20)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- settings --------------------------------------------------------------------------------


def test_fault_settings_come_from_the_environment_and_are_checked() -> None:
    settings = Settings.from_env({
        "BSO_GRACEFUL_TIMEOUT": "7", "BSO_STORE_WAIT_SECONDS": "1.5", "BSO_MAX_HEADERS": "20",
        "BSO_HEADER_TIMEOUT_SECONDS": "3", "BSO_MAX_HEADER_BYTES": "4096", "BSO_MAX_CONNECTIONS": "9",
    })
    assert (settings.graceful_timeout_seconds, settings.store_wait_seconds) == (7.0, 1.5)
    assert (settings.max_headers, settings.header_timeout_seconds, settings.max_header_bytes) == (20, 3.0, 4096)
    assert settings.max_connections == 9
    env = Settings(database_url="postgresql://u@127.0.0.1/db", store_wait_seconds=1.5).persistence_env()
    assert (env["POSTGRES_CONNECT_TIMEOUT"], env["POSTGRES_STORE_WAIT_SECONDS"]) == ("2", "1.5")
    assert env["POSTGRES_STATEMENT_TIMEOUT_MS"] == "10000"
    for key in ("BSO_GRACEFUL_TIMEOUT", "BSO_STORE_WAIT_SECONDS", "BSO_HEADER_TIMEOUT_SECONDS"):
        with pytest.raises(SettingsError, match=key):
            Settings.from_env({key: "0"})
    with pytest.raises(SettingsError, match="BSO_MAX_CONNECTIONS"):
        Settings.from_env({"BSO_MAX_CONNECTIONS": "0"})


# -- 1. a lost SQLite store is never silent ----------------------------------------------------


def _replace(path: Path) -> None:
    """Another file at the path (same content, another inode), as a restore or a mistake makes."""
    shutil.copyfile(path, path.with_suffix(".copy"))
    for companion in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        companion.unlink(missing_ok=True)
    os.replace(path.with_suffix(".copy"), path)


def _delete(path: Path) -> None:
    for victim in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        victim.unlink(missing_ok=True)


@pytest.mark.parametrize("fault", ["deleted", "replaced"])
def test_a_store_file_lost_under_a_running_server_refuses_every_write(fault: str, tmp_path: Path) -> None:
    path = tmp_path / "bso.db"
    with running_server(f"sqlite:///{path}", tmp_path, "--workers", "2") as server:
        wait_for_startup(server)
        trial = register(server.url, "lost-1")
        (_delete if fault == "deleted" else _replace)(path)
        started = time.monotonic()
        statuses = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for epoch in range(1, 21):  # either worker; each finds out at its first write
                statuses.append(client.post("/report", content=report_body(trial, epoch)).status_code)
                statuses.append(client.get("/jobs/batch_size", params={"job_id": "lost-1"}).status_code)
            answer = client.get("/jobs/batch_size", params={"job_id": "lost-1"})
        assert statuses == [503] * 40, statuses  # never acknowledged: a restart would not find it
        assert answer.headers["retry-after"] and answer.headers["connection"] == "close"
        ready_started = time.monotonic()
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503 and time.monotonic() - ready_started < 2
        figure(f"sqlite file {fault}: first write after it 503, 40/40 writes 503 in "
               f"{time.monotonic() - started:.2f} s; /readyz 503")
        if fault == "deleted":
            assert not path.exists()  # no new empty store took its place
    log = server.log_path.read_text()
    assert f"the event store file {path} was {fault}" in log, log
    assert "Traceback" not in log


def test_a_store_failure_answers_with_connection_close_and_the_connection_ends(tmp_path: Path) -> None:
    path = tmp_path / "bso.db"
    with running_server(f"sqlite:///{path}", tmp_path) as server:
        register(server.url, "close-1")
        _delete(path)
        request = b"GET /jobs/batch_size?job_id=close-1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
        answer, closed = raw_exchange(port_of(server), request)
    assert status_of(answer) == 503, answer
    assert b"\r\nconnection: close\r\n" in answer.lower() and closed


def test_an_unexpected_error_answers_with_connection_close(tmp_path: Path) -> None:
    app = create_app(Settings(database_url="memory://"))

    async def broken(request: Any) -> Any:
        raise RuntimeError("boom")

    app.add_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/broken")
    assert answer.status_code == 500 and answer.headers["connection"] == "close"


def test_readyz_answers_within_two_seconds_while_sqlite_is_locked_for_longer(tmp_path: Path) -> None:
    path = tmp_path / "bso.db"
    with running_server(f"sqlite:///{path}", tmp_path) as server:
        register(server.url, "locked-1")
        holder = sqlite3.connect(path, isolation_level=None, timeout=5)
        try:
            holder.execute("BEGIN IMMEDIATE")  # the write lock, held as a long writer would
            times = []
            for _ in range(3):
                started = time.monotonic()
                ready = httpx.get(f"{server.url}/readyz", timeout=10)
                times.append(time.monotonic() - started)
                assert ready.status_code == 503, ready.text
            assert max(times) < 2, times
            figure(f"sqlite write lock held: /readyz 503 in {max(times):.2f} s at most")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200


# -- 2. PostgreSQL outage: 503 at once, recovery within seconds ---------------------------------


class Postgres:
    """A PostgreSQL server of this test's own, which it stops and starts."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = pgserver.free_port()
        self.url = pgserver.start(data_dir, self.port)

    def stop_immediately(self) -> None:
        pgserver._run([str(pgserver.BIN_DIR / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"])

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c max_connections=200"
        pgserver._run([str(pgserver.BIN_DIR / "pg_ctl"), "-D", str(self.data_dir), "-o", options,
                       "-l", str(self.data_dir / "server.log"), "-w", "-t", "60", "start"])


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    if not pgserver.binaries_present():
        pytest.skip(f"PostgreSQL server binaries not found in {pgserver.BIN_DIR}")
    data_dir = pgserver.temporary_data_dir()
    try:
        yield Postgres(data_dir)
    finally:
        pgserver.stop(data_dir)  # by its postmaster.pid, if it runs
        shutil.rmtree(data_dir, ignore_errors=True)


def _timed(call: Any) -> tuple[int, float]:
    started = time.monotonic()
    try:
        status = call().status_code
    except httpx.TimeoutException:
        status = 0
    return status, time.monotonic() - started


OUTAGE_SECONDS = 15


def test_postgres_stopped_is_503_within_seconds_and_service_resumes_when_it_returns(
    own_postgres: Postgres, tmp_path: Path
) -> None:
    with running_server(own_postgres.url, tmp_path, "--workers", "2") as server:
        wait_for_startup(server)
        trial = register(server.url, "outage-1")
        own_postgres.stop_immediately()
        stopped = time.monotonic()
        results: list[tuple[str, int, float]] = []
        lock = threading.Lock()

        def trainer() -> None:
            with httpx.Client(base_url=server.url, timeout=20) as client:
                for epoch in range(1, 4):
                    for name, call in (
                        ("predict", lambda: client.get("/jobs/batch_size", params={"job_id": "outage-1"})),
                        ("report", lambda: client.post("/report", content=report_body(trial, epoch))),
                    ):
                        status, seconds = _timed(call)
                        with lock:
                            results.append((name, status, seconds))

        threads = [threading.Thread(target=trainer, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        ready_times = []
        for _ in range(3):
            status, seconds = _timed(lambda: httpx.get(f"{server.url}/readyz", timeout=20))
            assert status == 503
            ready_times.append(seconds)
        for thread in threads:
            thread.join(timeout=120)
        statuses = {status for _, status, _ in results}
        worst = max(seconds for _, _, seconds in results)
        assert len(results) == 24 and statuses == {503}, results
        assert worst < 5, results
        assert max(ready_times) < 2, ready_times
        # A longer outage: psycopg_pool's own backoff would by now wait 8 s between attempts.
        with httpx.Client(base_url=server.url, timeout=20) as client:
            while time.monotonic() - stopped < OUTAGE_SECONDS:
                status, seconds = _timed(lambda: client.get("/jobs/batch_size", params={"job_id": "outage-1"}))
                assert status == 503 and seconds < 5, (status, seconds)
                worst = max(worst, seconds)
                time.sleep(0.5)
        figure(f"postgres stopped: every predict/report 503, slowest {worst:.2f} s; "
               f"/readyz 503 in {max(ready_times):.2f} s at most; outage {time.monotonic() - stopped:.1f} s")

        own_postgres.start()
        restarted = time.monotonic()
        ready_after = write_after = None
        with httpx.Client(base_url=server.url, timeout=20) as client:
            while time.monotonic() - restarted < 30 and (ready_after is None or write_after is None):
                if ready_after is None and client.get("/readyz").status_code == 200:
                    ready_after = time.monotonic() - restarted
                if write_after is None:
                    answers = [client.get("/jobs/batch_size", params={"job_id": "outage-1"}).status_code
                               for _ in range(6)]  # new connections: both workers, likely
                    if answers == [200] * 6:
                        write_after = time.monotonic() - restarted
                time.sleep(0.1)
        assert ready_after is not None and ready_after < 5, ready_after
        assert write_after is not None and write_after < 5, write_after
        figure(f"postgres back: /readyz 200 after {ready_after:.2f} s, six writes in a row 200 after {write_after:.2f} s")
    assert "Traceback" not in server.log_path.read_text()


def test_sigterm_with_postgres_down_exits_within_the_graceful_timeout(own_postgres: Postgres, tmp_path: Path) -> None:
    graceful = 3
    with running_server(own_postgres.url, tmp_path, "--workers", "2", "--graceful-timeout", str(graceful)) as server:
        try:
            register(server.url, "term-1")
            workers = wait_for_workers(server.process.pid, 2)
            own_postgres.stop_immediately()
            stop = threading.Event()

            def trainer() -> None:
                with httpx.Client(base_url=server.url, timeout=20) as client:
                    for _ in range(200):
                        if stop.is_set():
                            return
                        with contextlib.suppress(httpx.HTTPError):
                            client.get("/jobs/batch_size", params={"job_id": "term-1"})

            threads = [threading.Thread(target=trainer, daemon=True) for _ in range(4)]
            for thread in threads:
                thread.start()
            time.sleep(1)
            started = time.monotonic()
            os.kill(server.process.pid, signal.SIGTERM)  # the supervisor only: it stops its workers
            server.process.wait(timeout=graceful + 30)
            elapsed = time.monotonic() - started
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            assert elapsed < graceful + 6, elapsed
            assert all(pid_state(pid) is None for pid in workers)
            figure(f"SIGTERM, postgres down, --graceful-timeout {graceful}: exited after {elapsed:.2f} s")
        finally:
            kill_group(server)


def test_sigterm_while_a_request_waits_on_a_long_sqlite_lock_exits_within_the_graceful_timeout(
    tmp_path: Path,
) -> None:
    """The request waits for SQLite's 30 s busy timeout, in a thread nothing can interrupt:
    the drain gives up at the graceful timeout and the exit backstop ends the process."""
    graceful = 2
    path = tmp_path / "bso.db"
    with running_server(f"sqlite:///{path}", tmp_path, "--graceful-timeout", str(graceful)) as server:
        holder = sqlite3.connect(path, isolation_level=None, timeout=5)
        try:
            register(server.url, "stuck-1")
            holder.execute("BEGIN IMMEDIATE")
            answers: list[int] = []

            def predict() -> None:
                with contextlib.suppress(httpx.HTTPError):
                    answers.append(
                        httpx.get(f"{server.url}/jobs/batch_size", params={"job_id": "stuck-1"}, timeout=60).status_code
                    )

            waiting = threading.Thread(target=predict, daemon=True)
            waiting.start()
            time.sleep(1)
            assert answers == []  # still waiting for the lock
            started = time.monotonic()
            os.kill(server.process.pid, signal.SIGTERM)
            server.process.wait(timeout=60)
            elapsed = time.monotonic() - started
            waiting.join(timeout=30)
            assert elapsed < graceful + 6, elapsed
            assert answers in ([], [503]), answers  # cut off, or cancelled: never acknowledged
            figure(f"SIGTERM, a request stuck on a SQLite lock, --graceful-timeout {graceful}: "
                   f"exited after {elapsed:.2f} s")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
            kill_group(server)


# -- 4. no orphan keeps serving ------------------------------------------------------------


def test_workers_of_a_killed_supervisor_exit_and_free_the_port(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'bso.db'}", tmp_path, "--workers", "2") as server:
        try:
            register(server.url, "orphan-1")
            workers = wait_for_workers(server.process.pid, 2)
            port = port_of(server)
            os.kill(server.process.pid, signal.SIGKILL)
            killed = time.monotonic()
            server.process.wait(timeout=10)
            while time.monotonic() - killed < 15 and any(pid_state(pid) is not None for pid in workers):
                time.sleep(0.05)
            gone_after = time.monotonic() - killed
            assert all(pid_state(pid) is None for pid in workers), workers
            assert gone_after < 5, gone_after
            assert port_is_free(port)
            figure(f"supervisor SIGKILLed: both workers gone after {gone_after:.2f} s, port free")
        finally:
            kill_group(server)
    assert "supervisor process" in server.log_path.read_text()


# -- 5. slow or huge heads, too many connections --------------------------------------------


LIMITS = {
    "BSO_MAX_CONNECTIONS": "20",
    "BSO_HEADER_TIMEOUT_SECONDS": "2",
    "BSO_MAX_HEADER_BYTES": "8192",
    "BSO_MAX_HEADERS": "50",
}


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server("memory://", tmp_path, **LIMITS) as server:
        yield server


def test_slow_heads_are_cut_at_the_header_timeout_and_extra_connections_get_503(
    limited_server: ServerProcess,
) -> None:
    port = port_of(limited_server)
    slow: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(50):  # slowloris: a head begun, never finished
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(connection)
        answers = []
        for connection in slow:
            answer = b""
            with contextlib.suppress(OSError):
                while chunk := connection.recv(65536):
                    answer += chunk
            answers.append((status_of(answer), time.monotonic() - started))
        statuses = [status for status, _ in answers]
        assert statuses.count(503) >= 30, statuses  # beyond 20 open connections: refused at once
        assert set(statuses) <= {408, 503}, statuses
        cut = [seconds for status, seconds in answers if status == 408]
        assert cut and max(cut) < 2 + 1.5, cut  # the others: 408 at the header timeout, then closed
        figure(f"50 slow heads, limit 20, header timeout 2 s: {statuses.count(503)} answered 503 at once, "
               f"{len(cut)} answered 408 after {max(cut):.2f} s at most")
    finally:
        for connection in slow:
            connection.close()
    assert httpx.get(f"{limited_server.url}/healthz", timeout=10).status_code == 200


def test_a_connection_beyond_the_limit_gets_503_while_slow_heads_hold_the_others(
    limited_server: ServerProcess,
) -> None:
    port = port_of(limited_server)
    slow = []
    try:
        for _ in range(20):
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            connection.sendall(b"GET /healthz HTTP/1.1\r\n")
            slow.append(connection)
        time.sleep(0.2)
        answer, closed = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(answer) == 503 and closed, answer
        assert b"retry-after: 5" in answer.lower() and b"connection: close" in answer.lower()
    finally:
        for connection in slow:
            connection.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the server notices the closed sockets at once
        if httpx.get(f"{limited_server.url}/healthz", timeout=10).status_code == 200:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the server did not serve again after the slow connections closed")


def test_an_idle_connection_is_closed_at_the_header_timeout(limited_server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", port_of(limited_server)), timeout=10) as connection:
        started = time.monotonic()
        assert connection.recv(1) == b""  # closed, nothing said: nothing was asked
        assert time.monotonic() - started < 2 + 1.5


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 100_000 + b"\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Some: 1\r\n" * 51 + b"\r\n", 431),
        (b"GET /healthz?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Some: 1\r\n" * 40 + b"\r\n", 200),
    ],
    ids=["1MB-header", "100k-headers", "51-headers", "20kB-url", "40-headers"],
)
def test_heads_beyond_the_limits_are_refused_with_431(limited_server: ServerProcess, head: bytes, status: int) -> None:
    answer, closed = raw_exchange(port_of(limited_server), head)
    assert status_of(answer) == status, answer[:200]
    if status == 431:
        assert closed and b"connection: close" in answer.lower()
    assert httpx.get(f"{limited_server.url}/healthz", timeout=10).status_code == 200


def test_ten_concurrent_30mb_heads_leave_the_worker_small(tmp_path: Path) -> None:
    with running_server("memory://", tmp_path) as server:  # default limits
        before = rss_kib(server.process.pid)
        peak = before
        statuses: list[int] = []

        def send_huge() -> None:
            with socket.create_connection(("127.0.0.1", port_of(server)), timeout=20) as connection:
                sent = 0
                with contextlib.suppress(OSError):
                    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
                    chunk = b"a" * 1_048_576
                    while sent < 30 * 1_048_576:
                        connection.sendall(chunk)
                        sent += len(chunk)
                answer = b""
                with contextlib.suppress(OSError):
                    while part := connection.recv(65536):
                        answer += part
                statuses.append(status_of(answer))

        threads = [threading.Thread(target=send_huge, daemon=True) for _ in range(10)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            peak = max(peak, rss_kib(server.process.pid))
            for thread in threads:
                thread.join(timeout=0.02)
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    growth_mib = (peak - before) / 1024
    assert growth_mib < 50, (before, peak)
    assert statuses.count(431) >= 1, statuses  # the others may be reset before reading it
    figure(f"ten concurrent 30 MB heads: worker RSS {before / 1024:.0f} -> {peak / 1024:.0f} MiB peak, "
           f"answers {sorted(statuses)}")
