"""A job's summary (which batch size, settled, savings), the fleet's, and the job list's
columns, filters and sorting; every figure recomputed here from the job's trials."""

import math
from functools import partial
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from application.audit import JobAudit
from application.service import BatchSizeOptimizer
from application.summary import SETTLED_AFTER
from infrastructure.settings import Settings, persistence_env
from tests.audit_helpers import ManualClock, linear_workload, train
from tests.helpers import job_spec

POLICIES = ["zeus", "lsts"]


@pytest.fixture
def app() -> Iterator[BatchSizeOptimizer]:
    optimizer = BatchSizeOptimizer(env=persistence_env("memory://"), clock=ManualClock())
    yield optimizer
    optimizer.close()


def trained(app: BatchSizeOptimizer, job_id: str, policy: str, recurrences: int, **spec: Any) -> JobAudit:
    app.register_job(job_spec(job_id=job_id, policy=policy, mab_seed=7, **spec))
    for _ in range(recurrences):
        train(app, job_id)
    return JobAudit(app)


def expected_savings(trials: list[dict[str, Any]], default: int, recommended: int) -> dict[str, Any]:
    """The README's definitions, computed from the trial list."""
    converged = [trial for trial in trials if trial["converged"]]
    at_default = [trial for trial in converged if trial["batch_size"] == default]
    at_recommended = [trial for trial in converged if trial["batch_size"] == recommended]
    figures = {}
    for name in ("energy", "time", "cost"):
        actual = sum(trial[name] or 0.0 for trial in trials)
        estimate = len(converged) * sum(trial[name] for trial in at_default) / len(at_default) if at_default else None
        mean = sum(trial[name] for trial in at_recommended) / len(at_recommended) if at_recommended else None
        elsewhere = [trial[name] or 0.0 for trial in trials if trial["batch_size"] != recommended]
        figures[name] = {
            "actual": actual,
            "default_estimate": estimate,
            "saved": None if estimate is None else estimate - actual,
            "fraction": None if estimate is None else (estimate - actual) / estimate,
            "exploration_cost": None if mean is None else sum(elsewhere) - len(elsewhere) * mean,
        }
    return figures


def assert_close(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        assert (actual[key] is None) == (value is None), key
        if value is not None:
            assert math.isclose(actual[key], value, rel_tol=1e-9, abs_tol=1e-6), key


@pytest.mark.parametrize("policy", POLICIES)
def test_the_summary_recommends_a_size_and_prices_the_savings_from_the_trials(app: BatchSizeOptimizer, policy: str) -> None:
    audit = trained(app, f"test-sum-{policy}", policy, 40, max_epochs=10)
    ended = app.predict(f"test-sum-{policy}")
    app.end_trial(f"test-sum-{policy}", ended["trial_number"], ended["batch_size"])
    app.predict(f"test-sum-{policy}")  # in flight: nothing consumed yet
    summary = audit.summary(f"test-sum-{policy}")
    state = audit.state(f"test-sum-{policy}")
    trials = audit.trials(f"test-sum-{policy}")

    recommended = summary["recommended_batch_size"]
    assert recommended == state["recommendation"]["batch_size"] and recommended in state["spec"]["batch_sizes"]
    assert summary["recommendation"]["observations"] > 0 and summary["recommendation"]["mean_cost"] > 0
    figures = expected_savings(trials, 32, recommended)
    for name in ("energy", "time", "cost"):
        assert_close(summary["savings"][name], figures[name])
    assert summary["savings"]["converged_recurrences"] == sum(bool(trial["converged"]) for trial in trials)
    assert summary["savings"]["default_estimate_missing"] is None


@pytest.mark.parametrize("policy", POLICIES)
def test_a_job_settles_once_its_last_trials_all_ran_the_recommended_size(app: BatchSizeOptimizer, policy: str) -> None:
    audit = trained(app, f"test-settle-{policy}", policy, 60, batch_sizes=[16, 32, 64], max_epochs=10)
    summary = audit.summary(f"test-settle-{policy}")
    sizes = [trial["batch_size"] for trial in audit.trials(f"test-settle-{policy}")]
    recommended = summary["recommended_batch_size"]
    run = len(sizes) - max((i for i, size in enumerate(sizes) if size != recommended), default=-1) - 1
    expected = summary["stage"] == "MAB" and run >= SETTLED_AFTER
    assert summary["settled"] is expected
    assert summary["settled_since_trial"] == (len(sizes) - run + 1 if expected else None)
    assert summary["settled_after_trials"] == SETTLED_AFTER
    assert summary["settled"], "60 recurrences of a three-size job settle under both policies"


@pytest.mark.parametrize("policy", POLICIES)
def test_no_default_estimate_when_the_default_size_never_converged(app: BatchSizeOptimizer, policy: str) -> None:
    # The default, 8, never reaches the target (linear_workload: sizes below 16 never do).
    audit = trained(app, f"test-nodefault-{policy}", policy, 12, default_batch_size=8, max_epochs=10)
    savings = audit.summary(f"test-nodefault-{policy}")["savings"]
    assert savings["cost"]["default_estimate"] is None and savings["cost"]["saved"] is None
    assert "default batch size (8) never converged" in savings["default_estimate_missing"]
    assert savings["cost"]["actual"] > 0


def test_a_fresh_job_recommends_its_default_with_nothing_measured(app: BatchSizeOptimizer) -> None:
    for policy in POLICIES:
        app.register_job(job_spec(job_id=f"test-fresh-{policy}", policy=policy))
        summary = JobAudit(app).summary(f"test-fresh-{policy}")
        assert summary["recommended_batch_size"] == 32 and summary["recommendation"]["observations"] == 0
        assert not summary["settled"] and summary["savings"]["cost"]["actual"] == 0.0


def test_the_fleet_sums_its_jobs_overall_and_per_gpu_model(app: BatchSizeOptimizer) -> None:
    trained(app, "test-a100", "zeus", 15, gpu_model="A100")
    trained(app, "test-v100", "lsts", 15, gpu_model="V100")
    audit = trained(app, "test-v100b", "zeus", 10, gpu_model="V100")
    app.delete_job("test-a100")  # deleted jobs are not in the fleet
    fleet = audit.fleet_summary()
    jobs = [audit.summary(job_id) for job_id in ("test-v100", "test-v100b")]
    assert fleet["overall"]["jobs"] == 2 and set(fleet["by_gpu_model"]) == {"V100"}
    for name in ("energy", "cost"):
        assert math.isclose(fleet["overall"][name]["actual"], sum(job["savings"][name]["actual"] for job in jobs))
        estimate = sum(job["savings"][name]["default_estimate"] for job in jobs)
        assert math.isclose(fleet["overall"][name]["default_estimate"], estimate)
        assert math.isclose(fleet["overall"][name]["fraction"], fleet["overall"][name]["saved"] / estimate)
    assert fleet["by_gpu_model"]["V100"] == fleet["overall"]


@pytest.fixture
def client(app: BatchSizeOptimizer) -> Iterator[TestClient]:
    slow = partial(linear_workload, smallest_converging=32)
    for number, (policy, gpu) in enumerate([("zeus", "A100"), ("lsts", "A100"), ("lsts", "V100"), ("zeus", "V100")]):
        job_id = f"test-list-{number}"
        app.register_job(job_spec(job_id=job_id, policy=policy, gpu_model=gpu, mab_seed=number))
        for _ in range(4 + 6 * number):
            train(app, job_id, workload=slow if number == 3 else linear_workload)
    with TestClient(create_app(Settings(database_url="memory://"), optimizer=app)) as test_client:
        yield test_client


@pytest.mark.parametrize("policy", POLICIES)
def test_the_summary_routes_answer_for_each_policy(client: TestClient, policy: str) -> None:
    job_id = "test-list-1" if policy == "lsts" else "test-list-0"
    summary = client.get(f"/v1/jobs/{job_id}/summary").json()
    assert summary["policy"] == policy and summary["recommended_batch_size"] in [8, 16, 32, 64]
    assert set(summary["savings"]["cost"]) == {"actual", "default_estimate", "saved", "fraction", "exploration_cost"}
    assert client.get("/v1/jobs/nobody/summary").status_code == 404
    fleet = client.get("/v1/summary").json()
    assert fleet["overall"]["jobs"] == 4 and set(fleet["by_gpu_model"]) == {"A100", "V100"}


def test_the_job_list_filters_by_policy_gpu_model_and_stage(client: TestClient) -> None:
    def ids(**params: Any) -> list[str]:
        return [row["job_id"] for row in client.get("/v1/jobs", params=params).json()["jobs"]]

    assert ids(policy="lsts") == ["test-list-1", "test-list-2"]
    assert ids(gpu_model="V100") == ["test-list-2", "test-list-3"]
    assert ids(policy="zeus", gpu_model="V100") == ["test-list-3"]
    stages = {row["job_id"]: row["stage"] for row in client.get("/v1/jobs").json()["jobs"]}
    assert ids(stage="MAB") == [job_id for job_id, stage in stages.items() if stage == "MAB"]
    assert ids(prefix="test-list-2", policy="lsts") == ["test-list-2"]
    assert ids(policy="lsts", limit=1) == ["test-list-1"]
    page = client.get("/v1/jobs", params={"policy": "lsts", "limit": 1}).json()
    assert [row["job_id"] for row in client.get("/v1/jobs", params={"policy": "lsts", "after": page["next_after"]}).json()["jobs"]] == ["test-list-2"]


def test_the_job_list_sorts_by_any_column_and_pages_by_offset(client: TestClient) -> None:
    rows = client.get("/v1/jobs", params={"sort": "-savings_fraction"}).json()["jobs"]
    fractions = [row["savings_fraction"] for row in rows]
    known = [fraction for fraction in fractions if fraction is not None]
    assert known == sorted(known, reverse=True) and fractions[: len(known)] == known
    by_trials = client.get("/v1/jobs", params={"sort": "job_id", "limit": 2}).json()
    assert [row["job_id"] for row in by_trials["jobs"]] == ["test-list-0", "test-list-1"] and by_trials["next_offset"] == 2
    rest = client.get("/v1/jobs", params={"sort": "job_id", "after": 2}).json()
    assert [row["job_id"] for row in rest["jobs"]] == ["test-list-2", "test-list-3"] and rest["next_offset"] is None
    for column in ("policy", "gpu_model", "default_batch_size", "recommended_batch_size", "settled"):
        values = [row[column] for row in client.get("/v1/jobs", params={"sort": column}).json()["jobs"]]
        assert values == sorted(values), column
    refused = client.get("/v1/jobs", params={"sort": "nonsense"})
    assert refused.status_code == 422 and "query.sort" in refused.text
