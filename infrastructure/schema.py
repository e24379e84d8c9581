"""Creating the event store's tables once, and saying clearly when they are missing.

eventsourcing creates its tables when an application starts with CREATE_TABLE on.
Several processes doing that at once can collide in PostgreSQL's catalog (``CREATE
TABLE IF NOT EXISTS`` is not race-free there), so creation runs under a
database-wide advisory lock: any number of servers on any number of hosts may call
``create_schema`` together. Workers then start with CREATE_TABLE off.
"""

import os
import sqlite3
from contextlib import contextmanager
from typing import Iterator

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import OperationalError, PersistenceError, ProgrammingError

from infrastructure.postgres_store import OneStatementRecorder
from infrastructure.settings import Settings

# Any fixed 64-bit number, shared by every bso process that creates the schema.
_SCHEMA_LOCK_KEY = 0x62736F5F736368  # "bso_sch"


class SchemaMissingError(RuntimeError):
    """The event store has no bso tables and this process was told not to create them."""


class StoreUnavailableError(RuntimeError):
    """The event store cannot be opened or read (missing, corrupt, unreachable); one line says why."""


# What a store that cannot be reached or read raises, below or through eventsourcing.
STORE_FAILURES: tuple[type[BaseException], ...] = (PersistenceError, sqlite3.Error, psycopg.Error, OSError)


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def store_failures_explained(settings: Settings) -> Iterator[None]:
    """Turn any failure to reach or read the store into a StoreUnavailableError naming it."""
    try:
        yield
    except ImportError:
        raise
    except STORE_FAILURES as error:
        raise StoreUnavailableError(
            f"cannot use the event store at {redacted(settings.database_url)}: {one_line(error)}"
        ) from None


def create_schema(application_class: type[Application], settings: Settings) -> None:
    """Create the tables ``application_class`` needs, if absent; safe to run concurrently."""
    _check_location(settings, must_exist=False)
    env = settings.override(create_schema=True).persistence_env()
    with store_failures_explained(settings), _exclusive_schema_lock(settings):
        application = application_class(env=env)
        try:
            probe_store(application)
        finally:
            application.close()


def check_schema(
    application_class: type[Application], settings: Settings, read_only: bool = False, integrity: bool = False
) -> None:
    """Raise SchemaMissingError unless the tables exist (without creating them), or
    StoreUnavailableError if the store cannot be opened or read. ``read_only`` never writes
    (nor creates a SQLite file); ``integrity`` also checks a SQLite file's structure."""
    _check_location(settings, must_exist=read_only)
    with store_failures_explained(settings):
        _check_tables(application_class, settings, read_only, integrity)


def _check_tables(application_class: type[Application], settings: Settings, read_only: bool, integrity: bool) -> None:
    application = application_class(env=settings.override(create_schema=False).persistence_env(read_only))
    try:
        probe_store(application, integrity)
        if isinstance(application.recorder, OneStatementRecorder):
            application.recorder.verify_schema()
    except (ProgrammingError, OperationalError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SchemaMissingError(
            f"The event store at {redacted(settings.database_url)} is not usable ({reason}). "
            "If its tables do not exist yet, or it was made by an older bso, run `bso init-db` (same database "
            "URL) or start `bso serve` without --no-create-schema."
        ) from None
    finally:
        application.close()


def probe_store(application: Application, integrity: bool = True) -> None:
    """Read the store as a server would: its newest notifications (decoded), and on SQLite,
    with ``integrity``, the file's structure (``PRAGMA quick_check``, one pass over the file).
    Raises whatever the store raises when it cannot be read."""
    recorder = application.recorder
    newest = recorder.max_notification_id() or 0
    for notification in recorder.select_notifications(max(1, newest - 9), 10):
        application.mapper.to_domain_event(notification)
    datastore = getattr(recorder, "datastore", None)
    if integrity and datastore is not None and hasattr(datastore, "pool") and hasattr(datastore.pool, "db_name"):
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA quick_check")
            verdict = cursor.fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"the database file is damaged ({verdict})")


def probe_writes(application: Application) -> None:
    """Try a write as a command would make one, keeping nothing that matters: raises what the
    store raises when a write cannot succeed now (SQLite: a committed one-row write to a table
    of its own, file identity checked; PostgreSQL: an event inserted and rolled back). Stores
    without a probe (memory) pass."""
    recorder = application.recorder
    for target in (recorder, getattr(recorder, "datastore", None)):
        probe = getattr(target, "probe_write", None)
        if probe is not None:
            probe()
            return


def _check_location(settings: Settings, must_exist: bool) -> None:
    """Say plainly what is wrong with a SQLite path, or why PostgreSQL cannot be reached,
    before a connection pool says it obscurely (or only after its timeout)."""
    if settings.uses_postgres:
        try:
            psycopg.connect(settings.database_url, connect_timeout=10).close()
        except psycopg.Error as error:
            raise StoreUnavailableError(f"cannot reach {redacted(settings.database_url)}: {one_line(error)}") from None
        return
    path = settings.sqlite_path()
    if path is None:
        return
    where = redacted(settings.database_url)
    if os.path.isdir(path):
        raise StoreUnavailableError(f"the event store at {where} is a directory, not a SQLite file")
    if must_exist and not os.path.exists(path):
        raise StoreUnavailableError(f"the event store at {where} does not exist (nothing was created)")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise StoreUnavailableError(f"the folder of the event store at {where} does not exist: {folder}")


def redacted(database_url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, sep, rest = database_url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not at or ":" not in credentials:
        return database_url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{location}"


@contextmanager
def _exclusive_schema_lock(settings: Settings) -> Iterator[None]:
    if not settings.uses_postgres:
        yield  # SQLite serialises DDL on its file lock; memory:// is per process
        return
    import psycopg

    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK_KEY,))
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK_KEY,))
