"""SQLite event store with the durability and waiting behaviour the service promises.

eventsourcing already puts the file in WAL mode. On top of that every connection
sets ``synchronous=FULL`` (WAL is fsynced at each commit, so a committed
transaction survives a process crash and an operating-system crash or power cut)
and a busy timeout, so that writers in other processes sharing the file
(``bso serve --workers N``) wait for the write lock instead of failing.
"""

import sqlite3
from typing import Any

from eventsourcing.persistence import InterfaceError
from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteFactory

SYNCHRONOUS = "FULL"
DEFAULT_LOCK_TIMEOUT_SECONDS = 30


class DurableSQLiteConnectionPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        # Settings of a connection, not of the file: every new connection needs them.
        raw: sqlite3.Connection = connection._sqlite_conn  # noqa: SLF001 (no public accessor)
        timeout_ms = int((self.lock_timeout or DEFAULT_LOCK_TIMEOUT_SECONDS) * 1000)
        try:
            raw.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            raw.execute(f"PRAGMA busy_timeout={timeout_ms}")
        except sqlite3.Error as error:
            raise InterfaceError(error) from error
        return connection


class DurableSQLiteFactory(SQLiteFactory):
    """eventsourcing's SQLite persistence, with connections from the pool above."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        plain = self.datastore.pool
        # Swapped before any connection exists (the library's pool connects lazily).
        self.datastore.pool = DurableSQLiteConnectionPool(
            db_name=plain.db_name,
            lock_timeout=plain.lock_timeout,
            pool_size=plain.pool_size,
            max_overflow=plain.max_overflow,
            # Threads of one process queue for the single writer slot; under a burst
            # of concurrent trainers that queue can outlast the library's 5 s default.
            pool_timeout=float(plain.lock_timeout or DEFAULT_LOCK_TIMEOUT_SECONDS),
        )
