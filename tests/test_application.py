"""The service layer, run against every event store (memory, SQLite, PostgreSQL)."""

from typing import Iterator

import pytest

from application.service import BatchSizeOptimizer
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
    answer = optimizer.report(spec["job_id"], 1, 32, time=10.0, energy=100.0, metric=0.9, current_epoch=2)
    assert answer == {"stop_train": True, "converged": True, "message": "Train succeeded"}
    assert optimizer.live_job(spec["job_id"]).min_cost == pytest.approx(0.5 * 100 + 0.5 * 300 * 10)
