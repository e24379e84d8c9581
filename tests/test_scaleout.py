"""Two ``bso serve --workers 2`` servers on one database, 64 concurrent trainers (bench/hammer.py)."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from application.service import BatchSizeOptimizer
from bench.hammer import drive, scrape_conflicts, verify
from infrastructure.schema import check_schema
from infrastructure.settings import Settings
from tests.servers import running_server

CYCLES = 2  # bench/hammer.py runs more for the figures; this keeps the suite fast


def test_two_multi_worker_servers_share_one_database_without_losing_or_duplicating(
    shared_database_url: str, tmp_path: Path
) -> None:
    with (
        running_server(shared_database_url, tmp_path, "--workers", "2") as first,
        running_server(shared_database_url, tmp_path, "--workers", "2", BSO_CREATE_SCHEMA="n") as second,
    ):
        ledger, figures = drive([first.url, second.url], CYCLES, deadline_seconds=300)
        conflicts = scrape_conflicts([first.url, second.url])
    print({**figures, **conflicts})
    assert figures["status_5xx"] == 0 and figures["responses_by_status"].keys() == {"200"}
    assert len(ledger.trials) == 9 and sum(map(len, ledger.trials.values())) == 64 * CYCLES
    assert conflicts["commands_gave_up"] == 0
    # every trainer request and the 9 registrations ran as a command on one of the 4 workers
    assert conflicts["commands"] == figures["requests"] + 9
    assert verify(shared_database_url, ledger) == []


def bso(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, timeout=timeout,
        cwd=Path(__file__).resolve().parent.parent,
    )


def test_init_db_run_concurrently_creates_the_schema_once(shared_database_url: str) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: bso("init-db", "--database-url", shared_database_url), range(4)))
    assert [result.returncode for result in results] == [0] * 4, [result.stderr for result in results]
    check_schema(BatchSizeOptimizer, Settings(database_url=shared_database_url))


def test_serve_without_schema_creation_on_an_empty_database_says_what_to_do(shared_database_url: str) -> None:
    result = bso("serve", "--no-create-schema", "--port", "1", "--database-url", shared_database_url)
    assert result.returncode == 2
    assert "bso init-db" in result.stderr and "Traceback" not in result.stderr
