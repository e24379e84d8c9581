"""PostgreSQL event recorder that writes a command's events in a single statement.

eventsourcing's own recorder sends six statements per write (BEGIN, SET LOCAL
lock_timeout, LOCK TABLE, NOTIFY, INSERT, COMMIT). Commands here are CPU-bound
and psycopg spends client CPU on every statement, so this recorder calls one
PL/pgSQL function instead, which takes the same table lock and inserts. Run in
autocommit, the call is its own transaction and holds the lock until it commits,
so notification ids still follow commit order (the job catalog relies on that).
It sends no NOTIFY (nothing in bso listens; readers of the log poll) and sets no
lock_timeout (bso leaves eventsourcing's at its default, none).

The function is created with the tables (``bso init-db``, or ``bso serve`` with
schema creation on); ``verify_schema`` tells a store made by an older version.

Every wait on PostgreSQL is bounded (``BoundedPostgresFactory``): connecting and
taking a pooled connection (``BSO_STORE_WAIT_SECONDS``, 2 s), each statement
(``statement_timeout``, ``BSO_STATEMENT_TIMEOUT_SECONDS``, 10 s), and one store
operation with its retries (the store wait again: eventsourcing's own recorders
retry ten times, each try waiting up to the pool's timeout). While the server is
away the pool tries to reconnect every second at most (psycopg_pool doubles its
delay up to minutes), so service resumes within about a second of its return.
"""

import functools
import math
import threading
import time
import uuid
from typing import Any, Callable, Sequence, TypeVar

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import (
    ConnectionPool,
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from eventsourcing.utils import Environment, EnvType
from psycopg.sql import SQL, Identifier
from psycopg_pool import PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from infrastructure.settings import DEFAULT_STATEMENT_TIMEOUT_SECONDS, DEFAULT_STORE_WAIT_SECONDS

RECONNECT_DELAY_CAP_SECONDS = 1.0  # psycopg_pool doubles from 1 s up to its reconnect timeout (5 min)
RETRY_WAIT_SECONDS = 0.05
FAIL_FAST_SECONDS = 2 * RECONNECT_DELAY_CAP_SECONDS  # a failed attempt this recent: the server is away
WRITE_PROBE_TIMEOUT_MS = 1000

F = TypeVar("F", bound=Callable[..., Any])

# The deadline of the store operation this thread is running: the pool gives no
# connection after it, so an operation's retries together stay within the store wait.
_operation = threading.local()


def bounded_retry(method: F) -> F:
    """Retry a recorder method after a broken connection (one left stale by a server restart),
    like eventsourcing's ``@retry``, but only until the store wait has passed since the first try."""

    @functools.wraps(method)
    def within_the_store_wait(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_operation, "deadline", None) is not None:
            return method(self, *args, **kwargs)  # nested: the outer operation's deadline holds
        _operation.deadline = deadline = time.monotonic() + self.datastore.store_wait_seconds
        try:
            while True:
                try:
                    return method(self, *args, **kwargs)
                except (InterfaceError, OperationalError) as error:
                    if isinstance(error.__cause__, PoolTimeout):
                        raise  # no connection to be had: the pool has waited (or knows) already
                    if time.monotonic() + RETRY_WAIT_SECONDS >= deadline:
                        raise
                    time.sleep(RETRY_WAIT_SECONDS)
        finally:
            _operation.deadline = None

    return within_the_store_wait  # type: ignore[return-value]


def _undecorated(method: Callable[..., Any]) -> Callable[..., Any]:
    """eventsourcing's recorder method without its ``@retry`` (ten tries, 0.2 s apart)."""
    return getattr(method, "__wrapped__", method)


class _CappedBackoff(AttemptWithBackoff):
    """psycopg_pool's reconnection backoff, with its delay capped: a pool that lost its
    server tries again every second at most, instead of after 1, 2, 4, ... 64 s."""

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, RECONNECT_DELAY_CAP_SECONDS)


class BoundedConnectionPool(ConnectionPool[Any]):
    """eventsourcing's pool, reconnecting promptly, giving no connection after the
    running operation's deadline, and saying why it had none to give.

    While its attempts to connect keep failing (the last one less than FAIL_FAST_SECONDS
    ago) and it holds no idle connection, it fails at once instead of keeping a request
    waiting for a connection that is not coming: commands on one job run one after
    another in a process, and each would otherwise wait the store wait in turn.
    """

    last_connect_error: str | None = None
    last_connect_failure: float | None = None

    def getconn(self, timeout: float | None = None) -> Any:
        failed = self.last_connect_failure
        if failed is not None and time.monotonic() - failed < FAIL_FAST_SECONDS and not self._pool:
            raise PoolTimeout(f"cannot connect to PostgreSQL: {self.last_connect_error}")
        deadline = getattr(_operation, "deadline", None)
        if timeout is None and deadline is not None:
            timeout = min(self.timeout, max(0.01, deadline - time.monotonic()))
        try:
            return super().getconn(timeout)
        except PoolTimeout as error:
            why = self.last_connect_error
            raise PoolTimeout(f"{error} (last attempt to connect: {why})" if why else str(error)) from None

    def _connect(self, timeout: float | None = None) -> Any:
        try:
            connection = super()._connect(timeout)
        except Exception as error:
            self.last_connect_error = (str(error).strip().splitlines() or [type(error).__name__])[0]
            self.last_connect_failure = time.monotonic()
            raise
        self.last_connect_error = self.last_connect_failure = None
        return connection

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        super()._add_connection(attempt or _CappedBackoff(timeout=self.reconnect_timeout), growing)


class BoundedPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL persistence with every wait bounded (see the module's doc)."""

    POSTGRES_STORE_WAIT_SECONDS = "POSTGRES_STORE_WAIT_SECONDS"
    POSTGRES_STATEMENT_TIMEOUT_MS = "POSTGRES_STATEMENT_TIMEOUT_MS"

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        wait = float(self.env.get(self.POSTGRES_STORE_WAIT_SECONDS) or DEFAULT_STORE_WAIT_SECONDS)
        statement_ms = int(self.env.get(self.POSTGRES_STATEMENT_TIMEOUT_MS) or DEFAULT_STATEMENT_TIMEOUT_SECONDS * 1000)
        datastore = self.datastore
        datastore.store_wait_seconds = wait  # type: ignore[attr-defined]
        plain = datastore.pool
        kwargs = dict(plain.kwargs or {})
        kwargs.update(
            connect_timeout=max(2, math.ceil(wait)),  # libpq's least
            # Set at connection, so it costs no round trip: no statement runs longer.
            options=f"-c statement_timeout={statement_ms}",
            # A peer that vanished without closing (host down, network cut) is noticed:
            # unacknowledged data for the statement timeout, or an idle connection's probes.
            tcp_user_timeout=statement_ms,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )
        # Swapped before any connection exists (the pool is created closed).
        datastore.pool = BoundedConnectionPool(
            get_password_func=plain.get_password_func,
            connection_class=plain.connection_class,
            kwargs=kwargs,
            min_size=plain.min_size,
            max_size=plain.max_size,
            open=False,
            configure=plain._configure,  # noqa: SLF001 (eventsourcing's after-connect settings)
            check=plain._check,  # noqa: SLF001
            timeout=wait,
            max_waiting=plain.max_waiting,
            max_lifetime=plain.max_lifetime,
        )


class BoundedAggregateRecorder(PostgresAggregateRecorder):
    """The snapshots' recorder, its retries bounded like the events' (see ``bounded_retry``)."""

    insert_events = bounded_retry(_undecorated(PostgresAggregateRecorder.insert_events))
    select_events = bounded_retry(_undecorated(PostgresAggregateRecorder.select_events))


BoundedPostgresFactory.aggregate_recorder_class = BoundedAggregateRecorder


class OneStatementRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        names = {
            "schema": Identifier(self.datastore.schema),
            "table": Identifier(self.events_table_name),
            "event": Identifier(self.stored_event_type_name),
            "function": Identifier(f"bso_insert_{self.events_table_name}"),
        }
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}(events {schema}.{event}[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ BEGIN "
                "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
                "RETURN QUERY INSERT INTO {schema}.{table} "
                "(originator_id, originator_version, topic, state) "
                "SELECT originator_id, originator_version, topic, state FROM unnest(events) "
                "RETURNING notification_id; "
                "END; $BODY$"
            ).format(**names)
        )
        # Rendered once: composing SQL objects on every call costs client CPU too.
        self._insert_call = SQL("SELECT * FROM {schema}.{function}(%s) AS notification_id").format(**names).as_string()
        self._function_signature = SQL("{schema}.{function}({schema}.{event}[])").format(**names).as_string()
        self._probe_insert = (
            SQL(
                "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
                "VALUES (%s, 0, 'bso:write-probe', ''::bytea)"
            )
            .format(**names)
            .as_string()
        )

    @bounded_retry
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        rows = [
            self.construct_pg_stored_event(event.originator_id, event.originator_version, event.topic, event.state)
            for event in stored_events
        ]
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self._insert_call, (rows,), prepare=True)
            return [row["notification_id"] for row in cursor.fetchall()]

    select_events = bounded_retry(_undecorated(PostgresApplicationRecorder.select_events))
    select_notifications = bounded_retry(_undecorated(PostgresApplicationRecorder.select_notifications))
    max_notification_id = bounded_retry(_undecorated(PostgresApplicationRecorder.max_notification_id))

    @bounded_retry
    def probe_write(self) -> None:
        """Insert an event and roll it back: raises what a write would raise now (server away,
        read-only, table missing, no rights), waiting a second at most for the table's lock.
        Nothing is kept; the notification id sequence skips a number, as after a lost race."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {WRITE_PROBE_TIMEOUT_MS}")
            cursor.execute(f"SET LOCAL lock_timeout = {WRITE_PROBE_TIMEOUT_MS}")
            cursor.execute(self._probe_insert, (uuid.uuid4(),))

    def verify_schema(self) -> None:
        """Raise eventsourcing's ProgrammingError if the insert function is missing."""
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT %s::regprocedure", (self._function_signature,))
