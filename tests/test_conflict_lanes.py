"""Conflict lanes: on PostgreSQL, a command that lost a race retries holding the job's advisory lock."""

import threading

import psycopg

from application.service import BatchSizeOptimizer
from infrastructure.conflict_lanes import PostgresConflictLanes, lock_key
from infrastructure.settings import persistence_env
from tests.helpers import job_spec


def test_a_lost_race_is_retried_in_a_lane_and_makes_the_job_hot(postgres_database_url: str) -> None:
    lanes = PostgresConflictLanes(postgres_database_url)
    ours = BatchSizeOptimizer(env=persistence_env(postgres_database_url), conflict_lanes=lanes)
    rival = BatchSizeOptimizer(env=persistence_env(postgres_database_url))
    try:
        _, spec = ours.register_job(job_spec())
        job_id = spec["job_id"]
        ours.predict(job_id)
        real_save, locks_seen = ours.save, []

        def save_seeing_locks(*aggregates, **kwargs):
            if not locks_seen:
                rival.predict(job_id)  # win the race once
            locks_seen.append(held_advisory_locks(postgres_database_url))
            return real_save(*aggregates, **kwargs)

        ours.save = save_seeing_locks
        assert ours.predict(job_id)["trial_number"] == 3
        assert lanes.taken == 1
        assert lock_key(job_id) not in locks_seen[0]  # first attempt: optimistic, no lock
        assert lock_key(job_id) in locks_seen[1]  # the retry held the job's lock
        assert lock_key(job_id) not in held_advisory_locks(postgres_database_url)  # released
        # The job is hot now: the next command takes the lane from its first attempt.
        assert ours.predict(job_id)["trial_number"] == 4
        assert lanes.taken == 2 and lock_key(job_id) in locks_seen[2]
    finally:
        ours.close()
        rival.close()


def test_without_a_free_lane_a_command_still_retries_optimistically(postgres_database_url: str) -> None:
    lanes = PostgresConflictLanes(postgres_database_url, lanes=1)
    app = BatchSizeOptimizer(env=persistence_env(postgres_database_url), conflict_lanes=lanes)
    rival = BatchSizeOptimizer(env=persistence_env(postgres_database_url))
    occupied, release = threading.Event(), threading.Event()

    def occupy_the_only_lane() -> None:
        with lanes.take_turns("someone-else", lost_race=True):
            occupied.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=occupy_the_only_lane)
    try:
        _, spec = app.register_job(job_spec())
        job_id = spec["job_id"]
        app.predict(job_id)
        holder.start()
        assert occupied.wait(timeout=30)
        real_save, raced = app.save, []

        def save_after_a_rival_write(*aggregates, **kwargs):
            if not raced:
                raced.append(rival.predict(job_id))
            return real_save(*aggregates, **kwargs)

        app.save = save_after_a_rival_write
        assert app.predict(job_id)["trial_number"] == 3
        assert lanes.taken == 1  # only the holder's lane
    finally:
        release.set()
        holder.join(timeout=30)
        app.close()
        rival.close()


def held_advisory_locks(database_url: str) -> set[int]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
        ).fetchall()
    return {key if key < 2**63 else key - 2**64 for (key,) in rows}
