"""The service layer, run against every event store (memory, SQLite, PostgreSQL)."""

import threading
from pathlib import Path
from typing import Iterator

import pytest

from application.service import BatchSizeOptimizer
from domain.errors import NoConvergedBatchSizeError, SpecMismatchError, UnknownJobError, UnknownTrialError
from domain.reporting import EpochReport
from infrastructure.settings import persistence_env
from tests.helpers import job_spec


@pytest.fixture
def optimizer(database_url: str) -> Iterator[BatchSizeOptimizer]:
    app = BatchSizeOptimizer(env=persistence_env(database_url))
    yield app
    app.close()


def test_register_predict_report_round_trip(optimizer: BatchSizeOptimizer) -> None:
    created, spec = optimizer.register_job(job_spec())
    assert created and spec["job_id"].startswith("test-")
    trial = optimizer.predict(spec["job_id"])
    assert trial == {"job_id": spec["job_id"], "batch_size": 32, "trial_number": 1}
    answer = optimizer.report(spec["job_id"], EpochReport(1, 32, time=10.0, energy=100.0, metric=0.9, epoch=2))
    assert answer == {"stop_train": True, "converged": True, "message": "Train succeeded"}
    assert optimizer.live_job(spec["job_id"]).min_cost == pytest.approx(0.5 * 100 + 0.5 * 300 * 10)


def test_registering_the_same_spec_again_is_not_a_new_job(optimizer: BatchSizeOptimizer) -> None:
    created, spec = optimizer.register_job(job_spec(job_id="test-same"))
    again, same = optimizer.register_job(job_spec(job_id="test-same"))
    assert (created, again, same) == (True, False, spec)


def test_registering_another_spec_under_the_same_id_is_refused(optimizer: BatchSizeOptimizer) -> None:
    optimizer.register_job(job_spec(job_id="test-same"))
    with pytest.raises(SpecMismatchError):
        optimizer.register_job(job_spec(job_id="test-same", eta_knob=0.2))


def test_unknown_job_is_an_error_on_every_command(optimizer: BatchSizeOptimizer) -> None:
    with pytest.raises(UnknownJobError):
        optimizer.predict("test-none")
    with pytest.raises(UnknownJobError):
        optimizer.report("test-none", EpochReport(1, 8, 1.0, 1.0, 1.0, 1))
    with pytest.raises(UnknownJobError):
        optimizer.end_trial("test-none", 1, 8)
    with pytest.raises(UnknownJobError):
        optimizer.delete_job("test-none")


def test_delete_hides_the_job_and_a_new_registration_starts_fresh(optimizer: BatchSizeOptimizer) -> None:
    optimizer.register_job(job_spec(job_id="test-del"))
    old = optimizer.live_job("test-del")
    optimizer.predict("test-del")
    optimizer.delete_job("test-del")
    with pytest.raises(UnknownJobError):
        optimizer.predict("test-del")
    created, _ = optimizer.register_job(job_spec(job_id="test-del"))
    assert created
    assert optimizer.predict("test-del")["trial_number"] == 1
    history = optimizer.repository.get(old.id)
    assert history.deleted and history.trial_count == 1


def test_end_trial_frees_the_exploration_and_is_idempotent(optimizer: BatchSizeOptimizer) -> None:
    _, spec = optimizer.register_job(job_spec())
    job_id = spec["job_id"]
    first = optimizer.predict(job_id)
    optimizer.end_trial(job_id, first["trial_number"], first["batch_size"])
    optimizer.end_trial(job_id, first["trial_number"], first["batch_size"])
    second = optimizer.predict(job_id)
    assert (second["trial_number"], second["batch_size"]) == (2, first["batch_size"])
    with pytest.raises(UnknownTrialError):
        optimizer.end_trial(job_id, 9, 32)


def test_no_converged_size_is_reported_and_the_job_stays_readable(optimizer: BatchSizeOptimizer) -> None:
    _, spec = optimizer.register_job(job_spec(batch_sizes=[16, 32], default_batch_size=32))
    job_id = spec["job_id"]
    trial = optimizer.predict(job_id)
    optimizer.report(job_id, EpochReport(trial["trial_number"], 32, 1.0, 1.0, 0.0, 10))
    with pytest.raises(NoConvergedBatchSizeError):
        optimizer.predict(job_id)
    assert optimizer.live_job(job_id).trial_count == 1


def test_concurrent_commands_in_one_process_never_duplicate_a_trial(optimizer: BatchSizeOptimizer) -> None:
    _, spec = optimizer.register_job(job_spec(num_pruning_rounds=1))
    job_id = spec["job_id"]
    numbers: list[int] = []

    def trainer() -> None:
        for _ in range(6):
            trial = optimizer.predict(job_id)
            numbers.append(trial["trial_number"])
            optimizer.report(job_id, EpochReport(trial["trial_number"], trial["batch_size"], 1.0, 10.0, 0.9, 1))

    threads = [threading.Thread(target=trainer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(numbers) == list(range(1, 37))
    job = optimizer.live_job(job_id)
    assert job.trial_statuses() == ["Succeeded"] * 36


def test_a_lost_race_is_retried_from_a_fresh_load(shared_database_url: str) -> None:
    database_url = shared_database_url
    optimizer = BatchSizeOptimizer(env=persistence_env(database_url))
    _, spec = optimizer.register_job(job_spec())
    job_id = spec["job_id"]
    optimizer.predict(job_id)  # cache the job in this process
    rival = BatchSizeOptimizer(env=persistence_env(database_url))
    real_save = optimizer.save
    raced = []

    def save_after_a_rival_write(*aggregates, **kwargs):
        if not raced:
            raced.append(rival.predict(job_id))  # another process wins the race for version N+1
        return real_save(*aggregates, **kwargs)

    optimizer.save = save_after_a_rival_write
    try:
        ours = optimizer.predict(job_id)
        assert raced[0]["trial_number"] == 2 and ours["trial_number"] == 3
        assert optimizer.conflict_stats.as_dict()["conflicts_retried"] == 1
        assert optimizer.live_job(job_id).trial_count == 3
    finally:
        rival.close()
        optimizer.close()


def test_a_job_deleted_and_registered_again_elsewhere_is_seen_here(shared_database_url: str) -> None:
    here = BatchSizeOptimizer(env=persistence_env(shared_database_url))
    elsewhere = BatchSizeOptimizer(env=persistence_env(shared_database_url))
    try:
        here.register_job(job_spec(job_id="test-moved"))
        assert here.predict("test-moved")["trial_number"] == 1
        elsewhere.delete_job("test-moved")
        with pytest.raises(UnknownJobError):
            here.predict("test-moved")
        elsewhere.register_job(job_spec(job_id="test-moved", eta_knob=0.3))
        assert elsewhere.predict("test-moved")["trial_number"] == 1
        assert here.predict("test-moved")["trial_number"] == 2
        assert here.live_job("test-moved").spec.eta_knob == 0.3
    finally:
        here.close()
        elsewhere.close()


def test_the_cache_fast_forwards_whatever_the_environment_says(tmp_path: Path) -> None:
    # With fast-forward off, each process decides on its own stale copy of the job, and
    # save relies on fast-forward to keep the cache current.
    env = {
        **persistence_env(f"sqlite:///{tmp_path / 'shared.db'}"),
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "BSO_DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }
    first, second, third = (BatchSizeOptimizer(env=env) for _ in range(3))
    try:
        first.register_job(job_spec(job_id="test-shared"))
        batch_sizes = [app.predict("test-shared")["batch_size"] for app in (first, second, first, second, first)]
        truth = third.live_job("test-shared")  # read from the store alone
        for app in (first, second):
            seen = app.live_job("test-shared")
            assert (seen.version, seen.trial_statuses()) == (truth.version, truth.trial_statuses())
        assert [int(size) for size in truth.trial_batch_sizes] == batch_sizes
    finally:
        for app in (first, second, third):
            app.close()
