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
"""

from typing import Any, Sequence

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier


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

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
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

    def verify_schema(self) -> None:
        """Raise eventsourcing's ProgrammingError if the insert function is missing."""
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT %s::regprocedure", (self._function_signature,))
