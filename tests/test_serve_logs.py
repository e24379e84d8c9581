"""What ``bso serve`` tells an operator: the store it opened (no password) and where it serves."""

import subprocess
import sys
from pathlib import Path

from tests.pgserver import free_port
from tests.servers import running_server


def test_serve_logs_the_store_without_its_password_and_its_address(postgres_database_url: str, tmp_path: Path) -> None:
    with_password = postgres_database_url.replace("postgres@", "postgres:hunter2@", 1)
    assert "hunter2" in with_password  # the test server trusts loopback clients: the password is not checked
    with running_server(with_password, tmp_path, "--workers", "2") as server:
        pass
    log = server.log_path.read_text()
    assert "hunter2" not in log
    assert f"Event store: {postgres_database_url.replace('postgres@', 'postgres:***@', 1)}" in log
    assert f"Serving {server.url} with 2 worker process(es)" in log


def test_serve_on_an_unreachable_store_says_so_in_one_line(tmp_path: Path) -> None:
    url = f"postgresql://bso:hunter2@127.0.0.1:{free_port()}/bso"  # nothing listens there
    result = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--database-url", url, "--port", str(free_port())],
                            capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 2
    assert result.stderr.startswith("bso: cannot reach postgresql://bso:***@127.0.0.1:")
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr
