"""The one-statement PostgreSQL recorder: same guarantees as eventsourcing's own, fewer statements."""

from concurrent.futures import ThreadPoolExecutor
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from application.service import BatchSizeOptimizer
from infrastructure.postgres_store import OneStatementRecorder
from infrastructure.schema import SchemaMissingError, check_schema, create_schema
from infrastructure.settings import Settings


def open_optimizer(database_url: str) -> BatchSizeOptimizer:
    settings = Settings(database_url=database_url)
    create_schema(BatchSizeOptimizer, settings)
    return BatchSizeOptimizer(env=settings.override(create_schema=False).persistence_env())


def stored_event(originator_id, version: int) -> StoredEvent:
    return StoredEvent(originator_id=originator_id, originator_version=version, topic="t", state=b"{}")


def test_the_service_writes_through_the_one_statement_recorder(postgres_database_url: str) -> None:
    optimizer = open_optimizer(postgres_database_url)
    try:
        assert isinstance(optimizer.recorder, OneStatementRecorder)
        aggregate = uuid4()
        ids = optimizer.recorder.insert_events([stored_event(aggregate, 1), stored_event(aggregate, 2)])
        assert ids is not None and len(ids) == 2 and ids[1] == ids[0] + 1
        assert [event.originator_version for event in optimizer.recorder.select_events(aggregate)] == [1, 2]
        notifications = optimizer.recorder.select_notifications(ids[0], 10)
        assert [notification.id for notification in notifications] == ids
    finally:
        optimizer.close()


def test_a_lost_race_is_an_integrity_error_and_writes_nothing(postgres_database_url: str) -> None:
    optimizer = open_optimizer(postgres_database_url)
    try:
        aggregate = uuid4()
        optimizer.recorder.insert_events([stored_event(aggregate, 1)])
        with pytest.raises(IntegrityError):
            # Version 2 is new, version 1 is taken: the whole batch must be refused.
            optimizer.recorder.insert_events([stored_event(aggregate, 2), stored_event(aggregate, 1)])
        assert [event.originator_version for event in optimizer.recorder.select_events(aggregate)] == [1]
    finally:
        optimizer.close()


def test_concurrent_writers_get_distinct_increasing_notification_ids(postgres_database_url: str) -> None:
    optimizer = open_optimizer(postgres_database_url)

    def write(_: int) -> list[int]:
        aggregate = uuid4()
        return [id for version in range(1, 26) for id in optimizer.recorder.insert_events([stored_event(aggregate, version)])]

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            per_writer = list(pool.map(write, range(8)))
        for ids in per_writer:
            assert ids == sorted(ids)
        everything = sorted(id for ids in per_writer for id in ids)
        logged = [notification.id for notification in optimizer.recorder.select_notifications(1, 1000)]
        assert len(set(everything)) == 200 and logged == everything
    finally:
        optimizer.close()


def test_a_store_without_the_insert_function_is_reported_as_needing_init_db(postgres_database_url: str) -> None:
    settings = Settings(database_url=postgres_database_url)
    create_schema(BatchSizeOptimizer, settings)
    with psycopg.connect(postgres_database_url, autocommit=True) as connection:
        connection.execute("DROP FUNCTION public.bso_insert_bso_events")  # a store made before it existed
    with pytest.raises(SchemaMissingError, match="bso init-db"):
        check_schema(BatchSizeOptimizer, settings)
    create_schema(BatchSizeOptimizer, settings)
    check_schema(BatchSizeOptimizer, settings)
