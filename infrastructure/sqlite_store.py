"""SQLite event store with the durability and waiting behaviour the service promises.

eventsourcing already puts the file in WAL mode. On top of that every connection
sets ``synchronous=FULL`` (WAL is fsynced at each commit, so a committed
transaction survives a process crash and an operating-system crash or power cut)
and a busy timeout, so that writers in other processes sharing the file
(``bso serve --workers N``) wait for the write lock instead of failing.

A store is never lost silently. A file deleted or replaced under a running server
would go on taking writes through the connections already open (to a file no path
leads to any more), and a restart would not find them. So the store remembers the
identity (device, inode) of the file it opened, checks the path still leads to it
before and after each write transaction (one ``stat``, a few microseconds), and
once it does not, refuses every write until the server is restarted
(``StoreLostError``, answered 503). New connections open the file without creating
it, so a vanished file is never replaced by an empty one.
"""

import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import quote

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.sqlite import (
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)

SYNCHRONOUS = "FULL"
DEFAULT_LOCK_TIMEOUT_SECONDS = 30
WRITE_PROBE_LOCK_TIMEOUT_MS = 1000

logger = logging.getLogger("bso.store")


class StoreLostError(OperationalError):
    """The event store's file was deleted or replaced under this process: writes are refused."""


class StoreFileGuard:
    """Whether the path still leads to the file this process opened (see the module's doc)."""

    def __init__(self, path: str, must_exist: bool = False) -> None:
        self.path = os.path.abspath(path)
        self.must_exist = must_exist  # a store opened without creating tables: made by someone else
        self.identity: tuple[int, int] | None = None
        self.lost: str | None = None
        self._lock = threading.Lock()
        self.remember()

    def remember(self) -> None:
        """Take the file now at the path as this store's (once: when it first exists)."""
        if self.identity is None:
            try:
                status = os.stat(self.path)
            except OSError:
                return
            self.identity = (status.st_dev, status.st_ino)

    def check(self, committed: bool = False) -> None:
        """Raise StoreLostError unless the path leads to the remembered file (and, after a
        commit, to its write-ahead log: a deleted log takes the commit with it)."""
        if self.lost is None:
            reason = self._changed(committed)
            if reason is None:
                return
            with self._lock:
                if self.lost is None:
                    self.lost = (
                        f"the event store file {self.path} {reason} while this server was running; "
                        "writes are refused until the server is restarted (restore the file first)"
                    )
                    logger.error("%s", self.lost)
        raise StoreLostError(self.lost)

    def _changed(self, committed: bool) -> str | None:
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            if self.identity is None and not self.must_exist:
                return None  # not created yet
            return "was deleted"
        except OSError as error:
            return f"cannot be found ({error.strerror})"
        if self.identity is None:
            self.identity = (status.st_dev, status.st_ino)
        elif (status.st_dev, status.st_ino) != self.identity:
            return "was replaced by another file"
        if committed and not os.path.exists(self.path + "-wal"):
            return "lost its write-ahead log (-wal file deleted)"
        return None


class DurableSQLiteConnectionPool(SQLiteConnectionPool):
    guard: StoreFileGuard | None = None

    def _create_connection(self) -> SQLiteConnection:
        try:
            connection = super()._create_connection()
        except InterfaceError:
            if self.guard is not None:
                self.guard.check()  # a file that vanished is the reason to give
            raise
        # Settings of a connection, not of the file: every new connection needs them.
        raw: sqlite3.Connection = connection._sqlite_conn  # noqa: SLF001 (no public accessor)
        timeout_ms = int((self.lock_timeout or DEFAULT_LOCK_TIMEOUT_SECONDS) * 1000)
        try:
            raw.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            raw.execute(f"PRAGMA busy_timeout={timeout_ms}")
        except sqlite3.Error as error:
            raise InterfaceError(error) from error
        if self.guard is not None:
            self.guard.remember()
            try:
                self.guard.check()  # a connection to a file put in the store's place reads nothing of it
            except StoreLostError:
                raw.close()
                raise
            # From now on a connection opens this file or fails: never a new empty one.
            self.db_name = f"file:{quote(self.guard.path)}?mode=rw"
        return connection


class GuardedSQLiteDatastore(SQLiteDatastore):
    """eventsourcing's SQLite datastore, with connections from the pool above, checking its
    file around every write transaction (a plain path; a URI is a read-only command's)."""

    def __init__(self, db_name: str, *, lock_timeout: int | None, must_exist: bool, **options: Any) -> None:
        super().__init__(db_name, lock_timeout=lock_timeout, **options)
        self.guard = None if db_name.startswith("file:") else StoreFileGuard(db_name, must_exist)
        plain = self.pool
        # Swapped before any connection exists (the library's pool connects lazily).
        self.pool = DurableSQLiteConnectionPool(
            db_name=plain.db_name,
            lock_timeout=plain.lock_timeout,
            pool_size=plain.pool_size,
            max_overflow=plain.max_overflow,
            # Threads of one process queue for the single writer slot; under a burst
            # of concurrent trainers that queue can outlast the library's 5 s default.
            pool_timeout=float(plain.lock_timeout or DEFAULT_LOCK_TIMEOUT_SECONDS),
        )
        self.pool.guard = self.guard
        if self.guard is not None and (self.guard.identity is not None or must_exist):
            self.pool.db_name = f"file:{quote(self.guard.path)}?mode=rw"

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[SQLiteCursor]:
        if not commit or self.guard is None:
            with super().transaction(commit=commit) as cursor:
                yield cursor
            return
        self.guard.check()
        with super().transaction(commit=True) as cursor:
            yield cursor
        self.guard.check(committed=True)  # the commit went to the file a restart opens

    def probe_write(self) -> None:
        """Commit a one-row write to a table of its own, on a connection of its own that waits
        a second at most for the write lock: raises what a write would raise now (file lost,
        read-only or immutable, disk full, locked)."""
        if self.guard is None:
            return
        self.guard.check()
        path = self.guard.path
        try:
            probe = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, isolation_level=None, timeout=0)
        except sqlite3.Error as error:
            raise OperationalError(f"cannot open {path} for writing: {error}") from error
        try:
            probe.execute(f"PRAGMA busy_timeout={WRITE_PROBE_LOCK_TIMEOUT_MS}")
            probe.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("CREATE TABLE IF NOT EXISTS bso_write_probe (id INTEGER PRIMARY KEY, probes INTEGER)")
            probe.execute(
                "INSERT INTO bso_write_probe VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET probes = probes + 1"
            )
            probe.execute("COMMIT")
        except sqlite3.Error as error:
            raise OperationalError(f"cannot write to {path}: {error}") from error
        finally:
            probe.close()
        self.guard.check(committed=True)


class DurableSQLiteFactory(SQLiteFactory):
    """eventsourcing's SQLite persistence, on the datastore above."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        plain = self.datastore
        self.datastore = GuardedSQLiteDatastore(
            plain.pool.db_name,
            lock_timeout=plain.pool.lock_timeout,
            # Without table creation (`bso serve`'s workers) the file was made before: never make it.
            must_exist=not self.env_create_table(),
            single_row_tracking=plain.single_row_tracking,
            originator_id_type=plain.originator_id_type,
        )
