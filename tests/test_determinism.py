"""Decisions are reproducible from the seed, and the event log rebuilds every state."""

import copy
from typing import Iterator

import numpy as np
import pytest

from application.service import BatchSizeOptimizer
from domain.reporting import EpochReport
from infrastructure.settings import persistence_env
from tests.helpers import job_spec

SIZES = [16, 32, 64]
COST = {16: 900.0, 32: 700.0, 64: 800.0}


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'bso.db'}"


@pytest.fixture
def optimizer(sqlite_url: str) -> Iterator[BatchSizeOptimizer]:
    app = BatchSizeOptimizer(env=persistence_env(sqlite_url))
    yield app
    app.close()


def run_history(app: BatchSizeOptimizer, job_id: str, recurrences: int) -> list[tuple[int, int]]:
    """Every trial converges in one epoch with a cost that depends on its size and number."""
    chosen = []
    for _ in range(recurrences):
        trial = app.predict(job_id)
        size, number = trial["batch_size"], trial["trial_number"]
        cost = COST[size] + 150.0 * (number % 5)
        app.report(job_id, EpochReport(number, size, time=0.0, energy=2 * cost, metric=0.9, epoch=1))
        chosen.append((number, size))
    return chosen


def expected_mab_choices(seed: int, arm_rewards: dict[int, list[float]], start: int, count: int) -> list[int]:
    """Zeus's bandit computed independently: permutation, then one normal per ascending arm."""
    rng = np.random.default_rng(seed)
    choices = []
    for number in range(start, start + count):
        order = rng.choice(np.array(SIZES), len(SIZES), replace=False)
        under = [size for size in order if len(arm_rewards[size]) < 2]
        if under:
            size = int(under[0])
        else:
            samples = []
            for arm in SIZES:
                x = np.array(arm_rewards[arm])
                variance = np.var(x)
                if variance == 0:
                    samples.append(rng.normal(x.mean(), 0.0))
                else:
                    precision = len(x) / variance
                    samples.append(rng.normal(x.sum() / variance / precision, np.sqrt(1 / precision)))
            size = SIZES[int(np.argmax(samples))]
        arm_rewards[size].append(-(COST[size] + 150.0 * (number % 5)))
        choices.append(size)
    return choices


def test_seeded_decisions_match_an_independent_numpy_computation(optimizer: BatchSizeOptimizer) -> None:
    _, spec = optimizer.register_job(job_spec(batch_sizes=SIZES, default_batch_size=32, mab_seed=42))
    history = run_history(optimizer, spec["job_id"], 40)
    pruning = [size for number, size in history if number <= 6]
    assert pruning == [32, 16, 64, 32, 16, 64]  # two rounds over all three sizes
    rewards = {size: [-(COST[size] + 150.0 * (n % 5)) for n, s in history[:6] if s == size] for size in SIZES}
    mab = [size for number, size in history if number > 6]
    assert mab == expected_mab_choices(42, rewards, 7, len(mab))
    assert len(set(mab)) > 1  # the comparison exercised more than one arm


def test_same_seed_same_decisions_across_applications(tmp_path) -> None:
    sequences = []
    for name in ("a", "b"):
        app = BatchSizeOptimizer(env=persistence_env(f"sqlite:///{tmp_path / name}.db"))
        _, spec = app.register_job(job_spec(job_id="test-same", batch_sizes=SIZES, default_batch_size=32, mab_seed=5))
        sequences.append(run_history(app, spec["job_id"], 25))
        app.close()
    assert sequences[0] == sequences[1]


def test_unseeded_jobs_record_an_entropy_seed(optimizer: BatchSizeOptimizer) -> None:
    _, first = optimizer.register_job(job_spec(mab_seed=None))
    _, second = optimizer.register_job(job_spec(mab_seed=None))
    seeds = {optimizer.live_job(spec["job_id"]).seed for spec in (first, second)}
    assert len(seeds) == 2 and all(isinstance(seed, int) for seed in seeds)


def test_replay_equals_live_aggregate_and_versions_match_observed_states(sqlite_url: str) -> None:
    live_app = BatchSizeOptimizer(env=persistence_env(sqlite_url))
    _, spec = live_app.register_job(job_spec(batch_sizes=SIZES, default_batch_size=32, mab_seed=None))
    job_id = spec["job_id"]
    observed = {}
    for _ in range(15):
        trial = live_app.predict(job_id)
        number, size = trial["trial_number"], trial["batch_size"]
        live_app.report(job_id, EpochReport(number, size, 1.0, 50.0, 0.2, 1))  # progress
        live_app.report(job_id, EpochReport(number, size, 2.0, 120.0, 0.9, 2))  # final
        job = live_app.live_job(job_id)
        observed[job.version] = copy.deepcopy(job)
    live = live_app.live_job(job_id)
    live_app.close()

    replay_app = BatchSizeOptimizer(env={**persistence_env(sqlite_url), "AGGREGATE_CACHE_MAXSIZE": ""})
    assert replay_app.repository.get(live.id) == live
    for version, state in observed.items():
        assert replay_app.repository.get(live.id, version=version) == state
    replay_app.close()


def test_snapshots_are_taken_and_rebuild_the_same_aggregate(sqlite_url: str) -> None:
    live_app = BatchSizeOptimizer(env=persistence_env(sqlite_url))
    _, spec = live_app.register_job(job_spec(batch_sizes=SIZES, default_batch_size=32, window_size=3))
    run_history(live_app, spec["job_id"], 130)  # 260+ events: past the snapshot interval
    live = live_app.live_job(spec["job_id"])
    live_app.close()

    fresh = BatchSizeOptimizer(env=persistence_env(sqlite_url))
    assert fresh.snapshots is not None and list(fresh.snapshots.get(live.id))
    assert fresh.repository.get(live.id) == live
    fresh.close()
