"""Conflict lanes: writers of a hot job take turns on PostgreSQL instead of racing.

Optimistic concurrency keeps every command correct on its own, but when several
processes keep writing one job, each commit spoils the attempts the others have
in flight and a request can lose many races in a row. A command that has lost a
race takes the job's advisory lock (a "lane", on a small pool of connections of
its own) for its remaining attempts, and for a few seconds after a lost race the
job counts as hot: this process's commands on it take the lane from their first
attempt, so its writers queue in PostgreSQL's lock queue rather than race. The
lock is only an optimisation: a command that finds no free lane, or waits too
long for the lock, goes on retrying, and the job's stream version still decides
every write.
"""

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import ContextManager

import psycopg
import psycopg_pool

from infrastructure.settings import Settings

logger = logging.getLogger("bso.lanes")

_MAX_HOT_JOBS = 10_000


def lock_key(job_id: str) -> int:
    """A stable signed 64-bit advisory-lock key for a job id."""
    return int.from_bytes(hashlib.sha256(f"bso-job:{job_id}".encode()).digest()[:8], "big", signed=True)


class PostgresConflictLanes:
    def __init__(
        self, database_url: str, lanes: int = 4, lock_wait_seconds: float = 5.0, hot_seconds: float = 5.0
    ) -> None:
        self.lock_wait_seconds = lock_wait_seconds
        self.hot_seconds = hot_seconds
        self._hot_until: dict[str, float] = {}
        self._pool = psycopg_pool.ConnectionPool(
            database_url, min_size=0, max_size=lanes, kwargs={"autocommit": True}, open=True, name="bso-lanes"
        )
        self.taken = 0  # lanes granted so far (read by tests)
        self._count_lock = threading.Lock()

    def take_turns(self, job_id: str, lost_race: bool) -> ContextManager[None]:
        """A lane for a command that lost a race, or for any command on a hot job."""
        now = time.monotonic()
        if lost_race:
            if len(self._hot_until) >= _MAX_HOT_JOBS:
                self._hot_until = {job: until for job, until in self._hot_until.items() if until > now}
            self._hot_until[job_id] = now + self.hot_seconds
        elif self._hot_until.get(job_id, 0.0) <= now:
            return contextlib.nullcontext()
        return self._lane(job_id)

    @contextlib.contextmanager
    def _lane(self, job_id: str) -> Iterator[None]:
        try:
            connection = self._pool.getconn(timeout=0.05)
        except psycopg_pool.PoolTimeout:
            yield  # every lane busy: retry optimistically
            return
        try:
            with self._locked(connection, lock_key(job_id)) as locked:
                if locked:
                    with self._count_lock:
                        self.taken += 1
                yield
        finally:
            self._pool.putconn(connection)

    @contextlib.contextmanager
    def _locked(self, connection: psycopg.Connection, key: int) -> Iterator[bool]:
        try:
            connection.execute(f"SET lock_timeout = '{int(self.lock_wait_seconds * 1000)}ms'")
            connection.execute("SELECT pg_advisory_lock(%s)", (key,))
        except psycopg.Error as error:
            logger.info("conflict lane not taken (%s): retrying optimistically", type(error).__name__)
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(psycopg.Error):  # a broken connection drops its locks anyway
                connection.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def close(self) -> None:
        self._pool.close()


def conflict_lanes_for(settings: Settings) -> PostgresConflictLanes | None:
    """Lanes on PostgreSQL; none elsewhere (SQLite serialises writers itself, memory is one process)."""
    if not settings.uses_postgres:
        return None
    return PostgresConflictLanes(settings.database_url)
