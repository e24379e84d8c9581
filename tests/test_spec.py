"""The domain refuses impossible jobs and reports itself, whoever asks, and stores nothing."""

import json
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from application.archive import ArchiveError, export_lines, import_lines
from application.audit import JobAudit
from application.service import BatchSizeOptimizer
from domain.errors import InvalidReportError, InvalidSpecError
from domain.reporting import EpochReport
from domain.spec import JobSpec, SpecLimits
from infrastructure.settings import Settings, persistence_env
from tests.helpers import CLIENT_SPEC, job_spec

IMPOSSIBLE = [
    ({"default_batch_size": 12}, "default_batch_size"),
    ({"batch_sizes": []}, "batch_sizes"),
    ({"batch_sizes": [8, 8, 32]}, "batch_sizes"),
    ({"batch_sizes": [0, 32]}, "batch_sizes"),
    ({"batch_sizes": [32, 2**40]}, "batch_sizes"),
    ({"eta_knob": 1.5}, "eta_knob"),
    ({"beta_knob": 0.0}, "beta_knob"),
    ({"max_power": float("inf")}, "max_power"),
    ({"max_power": 1e300}, "max_power"),
    ({"mab_prior_mean": float("nan")}, "mab_prior_mean"),
    ({"max_epochs": 0}, "max_epochs"),
    ({"max_epochs": 2.5}, "max_epochs"),
    ({"num_pruning_rounds": 0, "mab_num_explorations": 0}, "mab_num_explorations"),
    ({"job_id": "other-1"}, "job_id"),
    ({"job_id": "test-has space"}, "job_id"),
    ({"gpu_model": ""}, "gpu_model"),
    ({"max_power": None}, "max_power"),
    ({"mab_seed": -1}, "mab_seed"),
]


@pytest.fixture
def app() -> Iterator[BatchSizeOptimizer]:
    optimizer = BatchSizeOptimizer(env=persistence_env("memory://"))
    yield optimizer
    optimizer.close()


@pytest.mark.parametrize(("change", "field"), IMPOSSIBLE)
def test_the_domain_refuses_an_impossible_spec_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as refused:
        JobSpec.create(job_spec(**{"job_id": "test-1", **change}))
    assert refused.value.field == field and field in str(refused.value)


@pytest.mark.parametrize(("change", "field"), IMPOSSIBLE)
def test_the_application_stores_nothing_for_an_impossible_spec(
    app: BatchSizeOptimizer, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidSpecError):
        app.register_job(job_spec(**change))
    assert not app.recorder.max_notification_id()


def test_caps_are_the_servers_own(app: BatchSizeOptimizer) -> None:
    sizes = list(range(1, 66))
    with pytest.raises(InvalidSpecError, match="at most 64"):
        app.register_job(job_spec(batch_sizes=sizes, default_batch_size=1))
    generous = BatchSizeOptimizer(env=persistence_env("memory://"), spec_limits=SpecLimits(batch_sizes=100))
    try:
        created, spec = generous.register_job(job_spec(batch_sizes=sizes, default_batch_size=1))
        assert created and len(spec["batch_sizes"]) == 65
    finally:
        generous.close()
    for name, value in [("num_pruning_rounds", 11), ("window_size", 10_001), ("max_epochs", 100_001)]:
        with pytest.raises(InvalidSpecError) as refused:
            app.register_job(job_spec(**{name: value}))
        assert refused.value.field == name


def test_caps_come_from_the_environment() -> None:
    limits = Settings.from_env({"BSO_MAX_BATCH_SIZES": "8", "BSO_MAX_EPOCHS": "50"}).spec_limits
    assert (limits.batch_sizes, limits.max_epochs, limits.num_pruning_rounds) == (8, 50, 10)


def test_a_spec_round_trips_and_equal_jobs_are_equal() -> None:
    spec = JobSpec.create(job_spec(job_id="test-1", batch_sizes=[64, 8, 32], max_power=300))
    assert spec.batch_sizes == (8, 32, 64) and spec.max_power == 300.0
    assert JobSpec.from_record(json.loads(json.dumps(spec.to_record()))) == spec
    assert spec.with_knobs({"beta_knob": None}).beta_knob is None
    with pytest.raises(InvalidSpecError, match="not a knob"):
        spec.with_knobs({"max_power": 1.0})


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ((1, 32, 1e308, 1.0, 0.9, 1), "time"),
        ((1, 32, 1.0, float("inf"), 0.9, 1), "energy"),
        ((1, 32, -1.0, 1.0, 0.9, 1), "time"),
        ((1, 32, 1.0, 1.0, float("nan"), 1), "metric"),
        ((0, 32, 1.0, 1.0, 0.9, 1), "trial_number"),
        ((1, 32, 1.0, 1.0, 0.9, 0), "epoch"),
        ((1, True, 1.0, 1.0, 0.9, 1), "batch_size"),
    ],
)
def test_an_impossible_epoch_report_is_refused_naming_the_field(fields: tuple[Any, ...], field: str) -> None:
    with pytest.raises(InvalidReportError) as refused:
        EpochReport(*fields)
    assert refused.value.field == field


def test_over_http_an_impossible_job_or_report_is_a_422_naming_the_field(tmp_path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'api.db'}", spec_limits=SpecLimits(batch_sizes=3))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        too_many = client.post("/jobs", content=json.dumps({**CLIENT_SPEC, "batch_sizes": [16, 32, 64, 128]}))
        assert too_many.status_code == 422
        assert too_many.json()["detail"][0]["field"] == "batch_sizes" and "at most 3" in too_many.json()["message"]
        job = client.post("/jobs", content=json.dumps(CLIENT_SPEC)).json()
        trial = client.get("/jobs/batch_size", params={"job_id": job["job_id"]}).json()
        huge = {**trial, "time": 1e308, "energy": 1e308, "metric": 0.9, "current_epoch": 1}
        refused = client.post("/report", content=json.dumps(huge))
        assert refused.status_code == 422 and "time" in refused.json()["message"]
        state = client.get(f"/v1/jobs/{job['job_id']}").json()
        assert state["version"] == 2 and state["min_cost"] is None  # registered, dispatched; nothing else


def test_an_export_of_an_impossible_job_is_not_imported(app: BatchSizeOptimizer) -> None:
    app.register_job(job_spec(job_id="test-x", batch_sizes=[8, 16, 32, 64]))
    lines = list(export_lines(JobAudit(app), "test-x"))
    small = BatchSizeOptimizer(env=persistence_env("memory://"), spec_limits=SpecLimits(batch_sizes=2))
    try:
        with pytest.raises(ArchiveError, match="batch_sizes"):
            import_lines(small, lines)
        assert not small.recorder.max_notification_id()
    finally:
        small.close()
