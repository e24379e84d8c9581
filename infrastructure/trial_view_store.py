"""The trial views' read model in the event store's own database (application/trial_views.py).

Two tables beside the events: one row per job (up to which version its fold goes, and the
bandit memory its next trials' reasons need) and one per trial (its view and the versions
its parts appeared at, and apart from them its details, decoded only when read), as JSON text. On SQLite the recorder folds each commit's events in
the same transaction as it writes them (``ViewedSQLiteRecorder``); on PostgreSQL, where the
events are written by one statement under a table lock, readers follow the event log instead
and record how far they have read in a third table (``ViewedPostgresRecorder``).

A database made before these tables existed reads as "no stored fold" until ``bso serve``
(or ``bso init-db``) creates them, and ``bso rebuild-views`` fills them for its old jobs.
"""

import json
import sqlite3
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, Sequence
from uuid import UUID

import psycopg
from psycopg.sql import SQL
from eventsourcing.persistence import PersistenceError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from application.trial_views import StoredFold, StoredTrial, trial_from_record, trial_record
from infrastructure.postgres_store import OneStatementRecorder

# Version 2 keeps each trial's details in a column of their own. The version-1 tables (one
# column for the whole view) are dropped: their jobs read from their events until
# ``bso rebuild-views`` (or, on PostgreSQL, the follower reading the log from its start) folds them again.
JOBS, TRIALS, POSITION = "bso_trial_view_jobs_v2", "bso_trial_views_v2", "bso_trial_view_position_v2"
_CREATE = (
    *(f"DROP TABLE IF EXISTS {table}" for table in ("bso_trial_view_jobs", "bso_trial_views", "bso_trial_view_position")),
    f"CREATE TABLE IF NOT EXISTS {JOBS} (job_uuid TEXT PRIMARY KEY, version BIGINT NOT NULL, memory TEXT NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {TRIALS} (job_uuid TEXT NOT NULL, number BIGINT NOT NULL, record TEXT NOT NULL, "
    "details TEXT NOT NULL, PRIMARY KEY (job_uuid, number))",
    f"CREATE TABLE IF NOT EXISTS {POSITION} (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
)
# What the drivers (or eventsourcing, wrapping them) raise for a table that is not there.
_DATABASE_ERRORS = (PersistenceError, sqlite3.Error, psycopg.Error)
_MISSING_TABLE_TEXT = ("no such table", "does not exist")


def _missing_table(error: Exception) -> bool:
    """A database made before the read model's tables existed (or opened read-only by a command)."""
    return any(text in str(error) for text in _MISSING_TABLE_TEXT)


class SQLTrialViewStore:
    """The read model's tables, through a datastore of either kind (``mark`` is its placeholder)."""

    def __init__(self, transaction: Callable[..., Any], mark: str, follows_the_log: bool) -> None:
        self._transaction = transaction
        self._mark = mark
        self.follows_the_log = follows_the_log

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._transaction(commit=True) as session:
            yield session

    def load(self, job_uuid: UUID, numbers: Sequence[int] | None = None, session: Any = None) -> StoredFold | None:
        m = self._mark
        reading = nullcontext(session) if session is not None else self._transaction(commit=False)
        try:
            with reading as cursor:
                cursor.execute(f"SELECT version, memory FROM {JOBS} WHERE job_uuid = {m}", (job_uuid.hex,))
                job = cursor.fetchone()
                if job is None:
                    return None
                if numbers is None:
                    cursor.execute(f"SELECT number, record, details FROM {TRIALS} WHERE job_uuid = {m}", (job_uuid.hex,))
                    rows = cursor.fetchall()
                else:
                    rows = []
                    for number in numbers:
                        cursor.execute(
                            f"SELECT number, record, details FROM {TRIALS} WHERE job_uuid = {m} AND number = {m}", (job_uuid.hex, number)
                        )
                        rows.extend(cursor.fetchall())
        except _DATABASE_ERRORS as error:
            if _missing_table(error):
                return None
            raise
        version, memory = _columns(job, "version", "memory")
        trials = dict(_trial(row) for row in rows)
        return StoredFold(int(version), json.loads(memory), trials)

    def save(self, job_uuid: UUID, fold: StoredFold, session: Any) -> None:
        m = self._mark
        session.execute(
            f"INSERT INTO {JOBS} (job_uuid, version, memory) VALUES ({m}, {m}, {m}) "
            "ON CONFLICT (job_uuid) DO UPDATE SET version = excluded.version, memory = excluded.memory",
            (job_uuid.hex, fold.version, json.dumps(fold.memory)),
        )
        for number, trial in fold.trials.items():
            record, details = trial_record(trial)
            session.execute(
                f"INSERT INTO {TRIALS} (job_uuid, number, record, details) VALUES ({m}, {m}, {m}, {m}) "
                "ON CONFLICT (job_uuid, number) DO UPDATE SET record = excluded.record, details = excluded.details",
                (job_uuid.hex, number, json.dumps(record), json.dumps(details)),
            )

    def clear(self, session: Any) -> None:
        for table in (JOBS, TRIALS, POSITION):
            session.execute(f"DELETE FROM {table}")

    def position(self, session: Any) -> int | None:
        """How far a follower has read the log (None: this database has no read model yet); the
        row is locked for the rest of the session on PostgreSQL, so that followers in other
        processes take turns."""
        lock = " FOR UPDATE" if self.follows_the_log else ""
        try:
            session.execute(f"SELECT position FROM {POSITION} WHERE name = {self._mark}{lock}", ("trial_views",))
        except _DATABASE_ERRORS as error:
            if _missing_table(error):
                return None
            raise
        row = session.fetchone()
        if row is None:
            session.execute(
                f"INSERT INTO {POSITION} (name, position) VALUES ({self._mark}, 0) ON CONFLICT (name) DO NOTHING",
                ("trial_views",),
            )
            return self.position(session) if self.follows_the_log else 0
        return int(_columns(row, "position")[0])

    def advance(self, session: Any, position: int) -> None:
        session.execute(f"UPDATE {POSITION} SET position = {self._mark} WHERE name = {self._mark}", (position, "trial_views"))


def _columns(row: Any, *names: str) -> tuple[Any, ...]:
    """Values of a row from either driver (sqlite3 rows by name, psycopg dict rows)."""
    return tuple(row[name] for name in names)


def _trial(row: Any) -> tuple[int, StoredTrial]:
    number, record, details = _columns(row, "number", "record", "details")
    return int(number), trial_from_record(json.loads(record), lambda: json.loads(details))


# What a recorder does with a commit's domain events, inside the commit's transaction.
Projection = Callable[[Any, Sequence[Any]], None]


class ViewedSQLiteRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite recorder, keeping the trial views in the same transaction as the
    events: ``project`` (set by the application) gets the commit's cursor and domain events."""

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.trial_views = SQLTrialViewStore(datastore.transaction, "?", follows_the_log=False)
        self.create_table_statements.extend(_CREATE)
        self.project: Projection | None = None

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        domain_events = kwargs.get("trial_view_events")  # the application's save passes them
        if self.project is not None and domain_events:
            try:
                self.project(c, domain_events)
            except _DATABASE_ERRORS as error:
                if not _missing_table(error):  # a store made before the read model: events only
                    raise
        return notification_ids


class ViewedPostgresRecorder(OneStatementRecorder):
    """The one-statement PostgreSQL recorder, with the trial views' tables (kept by readers
    following the log: application/service.py ``follow_trial_views``)."""

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.trial_views = SQLTrialViewStore(datastore.transaction, "%s", follows_the_log=True)
        self.sql_create_statements.extend(SQL(statement) for statement in _CREATE)  # type: ignore[arg-type]
