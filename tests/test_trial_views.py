"""The trial views' read model: kept beside the events (SQLite: in their transaction;
PostgreSQL: by readers following the log), equal to folding the events, at every version,
fast to restore after a restart, and rebuildable."""

from pathlib import Path
from typing import Any, Iterator

import pytest

from application.audit import JobAudit, primitives, trial_row
from application.service import BatchSizeOptimizer
from application.trial_views import TrialFold
from domain.reporting import EpochReport
from infrastructure.settings import persistence_env
from tests.audit_helpers import ManualClock, train
from tests.helpers import job_spec

JOB = "test-views"
LEASE = 100.0


def optimizer(database_url: str, clock: ManualClock | None = None) -> BatchSizeOptimizer:
    return BatchSizeOptimizer(env=persistence_env(database_url), clock=clock or ManualClock(), lease_seconds=LEASE)


def scripted_history(app: BatchSizeOptimizer, clock: ManualClock, policy: str) -> None:
    """Trials of every ending: converged, stopped, ended, expired, in flight with epochs."""
    app.register_job(job_spec(job_id=JOB, policy=policy, mab_seed=5))
    for _ in range(8):
        train(app, JOB)
    ended = app.predict(JOB)
    app.report(JOB, EpochReport(ended["trial_number"], ended["batch_size"], 5.0, 50.0, 0.1, 1))
    app.end_trial(JOB, ended["trial_number"], ended["batch_size"])
    app.predict(JOB)
    clock.advance(2 * LEASE)  # that one expires at the next command
    train(app, JOB)
    running = app.predict(JOB)
    app.report(JOB, EpochReport(running["trial_number"], running["batch_size"], 5.0, 50.0, 0.1, 1))


def folded(app: BatchSizeOptimizer, job_uuid: Any, up_to: int | None = None) -> dict[int, Any]:
    fold = TrialFold()
    fold.apply(app.repository.event_store.get(job_uuid, lte=up_to))
    return primitives(fold.views())


@pytest.fixture(params=["zeus", "lsts"])
def history(request: pytest.FixtureRequest, shared_database_url: str) -> Iterator[tuple[str, Any]]:
    clock = ManualClock()
    app = optimizer(shared_database_url, clock)
    scripted_history(app, clock, request.param)
    job_uuid = app.live_job(JOB).id
    app.close()
    yield shared_database_url, job_uuid


def test_the_stored_views_equal_the_events_folded(history: tuple[str, Any]) -> None:
    url, job_uuid = history
    app = optimizer(url)
    try:
        app.follow_trial_views()  # PostgreSQL: readers keep it; SQLite: kept at each commit
        assert app.trial_views is not None
        stored = app.trial_views.load(job_uuid)
        assert stored is not None and stored.version == app.live_job(JOB).version
        restored = TrialFold()
        restored.restore(stored)
        assert primitives({number: restored.detailed(view) for number, view in restored.views().items()}) == folded(app, job_uuid)
    finally:
        app.close()


def test_every_past_version_reads_as_the_events_folded_up_to_it(history: tuple[str, Any]) -> None:
    url, job_uuid = history
    app = optimizer(url)
    try:
        audit = JobAudit(app)
        latest = app.live_job(JOB).version
        for version in range(1, latest + 1):
            expected = [trial_row(trial, why=True) for trial in folded(app, job_uuid, version).values()]
            assert audit.trials(JOB, version, why=True) == expected, version
    finally:
        app.close()


def test_a_restarted_reader_reads_no_event_it_has_in_the_views(history: tuple[str, Any]) -> None:
    url, job_uuid = history
    app = optimizer(url)
    try:
        app.follow_trial_views()
        count = app.live_job(JOB).trial_count
        read: list[Any] = []
        real_get = app.repository.event_store.get

        def counting_get(*args: Any, **kwargs: Any) -> Any:
            events = list(real_get(*args, **kwargs))
            read.extend(event for event in events if event.originator_id == job_uuid)
            return events

        app.repository.event_store.get = counting_get  # type: ignore[method-assign]
        trials = JobAudit(app).trials(JOB)
        assert len(trials) == count
        assert read == [], "every trial came from the stored views"
    finally:
        app.close()


def history_without_views(url: str) -> tuple[BatchSizeOptimizer, Any]:
    """A store of the scripted history of a Zeus job, with the read model emptied (as a store
    written before it existed reads): the application, open, and the job's UUID."""
    clock = ManualClock()
    app = optimizer(url, clock)
    scripted_history(app, clock, "zeus")
    store = app.trial_views
    assert store is not None
    with store.transaction() as session:
        store.clear(session)
    return app, app.live_job(JOB).id


def test_a_job_stored_before_the_views_reads_from_its_events_until_rebuilt(tmp_path: Path) -> None:
    app, job_uuid = history_without_views(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        store = app.trial_views
        assert store is not None
        train(app, JOB)  # not folded onto a fold that does not exist
        assert store.load(job_uuid) is None
        expected = folded(app, job_uuid)
        assert {str(number): JobAudit(app).trial(JOB, int(number)) for number in expected} == expected
        assert app.rebuild_trial_views([job_uuid]) == 1
        stored = store.load(job_uuid)
        assert stored is not None and stored.version == app.live_job(JOB).version
        train(app, JOB)  # and from now on kept at each commit again
        assert store.load(job_uuid).version == app.live_job(JOB).version  # type: ignore[union-attr]
    finally:
        app.close()


def test_a_restored_fold_decodes_only_the_details_a_read_shows(history: tuple[str, Any]) -> None:
    """The trial lists and the summary need no trial's details; a page with the why decodes
    its own trials' only, and a trial's detail view its own."""
    url, job_uuid = history
    app = optimizer(url)
    try:
        app.follow_trial_views()
        store = app.trial_views
        assert store is not None
        decoded: list[int] = []
        real_load = store.load

        def counting_load(*args: Any, **kwargs: Any) -> Any:
            stored = real_load(*args, **kwargs)
            for number, trial in stored.trials.items():
                object.__setattr__(trial, "details", lambda number=number, decode=trial.details: decoded.append(number) or decode())
            return stored

        store.load = counting_load  # type: ignore[method-assign]
        audit = JobAudit(app)
        expected = folded(app, job_uuid)
        assert audit.trials(JOB) == [trial_row(view) for view in expected.values()]
        audit.summary(JOB)
        assert decoded == []
        page = audit.trials_page(JOB, why=True, after=2, limit=3)
        assert [row["number"] for row in page["trials"]] == [3, 4, 5] and sorted(decoded) == [3, 4, 5]
        assert page["trials"] == [trial_row(expected[str(number)], why=True) for number in (3, 4, 5)]
        assert audit.trial(JOB, 7) == expected["7"] and sorted(decoded) == [3, 4, 5, 7]
    finally:
        app.close()


def test_a_store_with_the_first_version_of_the_tables_reads_from_its_events_until_rebuilt(tmp_path: Path) -> None:
    """Version 1 kept a whole view in one column: its tables are dropped when the tables are
    made, and its jobs read from their events until ``bso rebuild-views``."""
    url = f"sqlite:///{tmp_path / 'v1.db'}"
    app, job_uuid = history_without_views(url)  # what version 2 has of a store that had version 1 only
    try:
        with app.trial_views.transaction() as session:  # type: ignore[union-attr]
            session.execute("CREATE TABLE bso_trial_view_jobs (job_uuid TEXT PRIMARY KEY, version BIGINT NOT NULL, memory TEXT NOT NULL)")
            session.execute("CREATE TABLE bso_trial_views (job_uuid TEXT NOT NULL, number BIGINT NOT NULL, record TEXT NOT NULL)")
            session.execute("INSERT INTO bso_trial_view_jobs VALUES (?, 1, '{}')", (job_uuid.hex,))
    finally:
        app.close()
    app = optimizer(url)  # opening the store makes the tables (as bso serve and bso init-db do)
    try:
        with app.trial_views.transaction() as session:  # type: ignore[union-attr]
            session.execute("SELECT name FROM sqlite_master WHERE name LIKE 'bso_trial_view%'")
            assert sorted(row["name"] for row in session.fetchall()) == sorted(["bso_trial_view_jobs_v2", "bso_trial_views_v2", "bso_trial_view_position_v2"])
        expected = [trial_row(trial, why=True) for trial in folded(app, job_uuid).values()]
        assert JobAudit(app).trials(JOB, why=True) == expected
        assert app.rebuild_trial_views([job_uuid]) == 1
        assert JobAudit(app).trials(JOB, why=True) == expected
    finally:
        app.close()
