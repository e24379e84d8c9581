"""Creating the event store's tables once, and saying clearly when they are missing.

eventsourcing creates its tables when an application starts with CREATE_TABLE on.
Several processes doing that at once can collide in PostgreSQL's catalog (``CREATE
TABLE IF NOT EXISTS`` is not race-free there), so creation runs under a
database-wide advisory lock: any number of servers on any number of hosts may call
``create_schema`` together. Workers then start with CREATE_TABLE off.
"""

from contextlib import contextmanager
from typing import Iterator

from eventsourcing.application import Application
from eventsourcing.persistence import OperationalError, ProgrammingError

from infrastructure.postgres_store import OneStatementRecorder
from infrastructure.settings import Settings

# Any fixed 64-bit number, shared by every bso process that creates the schema.
_SCHEMA_LOCK_KEY = 0x62736F5F736368  # "bso_sch"


class SchemaMissingError(RuntimeError):
    """The event store has no bso tables and this process was told not to create them."""


def create_schema(application_class: type[Application], settings: Settings) -> None:
    """Create the tables ``application_class`` needs, if absent; safe to run concurrently."""
    env = settings.override(create_schema=True).persistence_env()
    with _exclusive_schema_lock(settings):
        application_class(env=env).close()


def check_schema(application_class: type[Application], settings: Settings) -> None:
    """Raise SchemaMissingError unless the tables exist (without creating them)."""
    application = application_class(env=settings.override(create_schema=False).persistence_env())
    try:
        application.recorder.max_notification_id()
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
