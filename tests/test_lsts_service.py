"""LSTS jobs through the service: per-job policy, recorded decisions, replay, HTTP, reanalysis."""

import json
import math
import statistics
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from application.audit import JobAudit, state_view
from application.reanalysis import reanalyze
from application.service import BatchSizeOptimizer
from application.simulator import (
    PAIRED_DRAWS,
    AggregateClient,
    InProcessClient,
    Knobs,
    TraceSimulator,
    WorkloadTrace,
)
from domain.errors import InvalidSpecError
from infrastructure.settings import Settings, SettingsError, persistence_env
from infrastructure.trace_data import WORKLOAD_PRESETS, Traces, shipped_power_trace, shipped_train_trace
from tests.audit_helpers import ManualClock, linear_workload, train
from tests.helpers import job_spec

JOB = "test-lsts"
SIZES = [8, 16, 32, 64, 128]


@pytest.fixture
def app() -> Iterator[BatchSizeOptimizer]:
    optimizer = BatchSizeOptimizer(env=persistence_env("memory://"), clock=ManualClock())
    yield optimizer
    optimizer.close()


def lsts_history(app: BatchSizeOptimizer, recurrences: int = 12, **spec: Any) -> JobAudit:
    app.register_job(job_spec(job_id=JOB, policy="lsts", batch_sizes=SIZES, **spec))
    for _ in range(recurrences):
        train(app, JOB)
    return JobAudit(app)


def test_the_walk_goes_down_from_the_default_then_up_and_records_its_bounds(app: BatchSizeOptimizer) -> None:
    audit = lsts_history(app)
    trials = audit.trials(JOB)
    assert [t["batch_size"] for t in trials[:4]] == [32, 16, 64, 128]  # 16 too costly ends the way down
    assert [t["kind"] for t in trials[:4]] == ["Exploration"] * 4
    assert trials[0]["cost_bound"] is None  # the default's first run has no bound
    best = trials[0]["cost"]
    assert trials[1]["cost_bound"] == pytest.approx(1.75 * best)  # beta_explore x best
    assert trials[3]["stop_reason"] == "cost_bound"  # 128 runs past its bound and is stopped
    state = audit.state(JOB)
    assert state["policy"] == "lsts" and state["stage"] == "MAB" and state["pruning"] is None
    assert state["lsts"]["arms"] == [32, 64]  # within (1 + keep_tol) x best; 128 failed
    why = audit.trial(JOB, len(trials))["why"]
    assert why["policy"] == "lsts" and why["phase"] == "bandit"
    observation = audit.trial(JOB, 2)["observation"]
    assert observation["direction"] == "down" and observation["direction_ended"] == "too_costly"


def test_an_ended_exploration_fails_and_ends_its_direction(app: BatchSizeOptimizer) -> None:
    app.register_job(job_spec(job_id=JOB, policy="lsts", batch_sizes=SIZES))
    train(app, JOB)  # the default
    down = app.predict(JOB)
    assert down["batch_size"] == 16
    concurrent = app.predict(JOB)  # the exploration of 16 is in flight: the cheapest size so far
    assert concurrent["batch_size"] == 32
    app.end_trial(JOB, down["trial_number"], 16)
    observation = JobAudit(app).trial(JOB, down["trial_number"])["observation"]
    assert observation["converged"] is False and observation["direction_ended"] == "failed"
    assert app.predict(JOB)["batch_size"] == 64  # up from the default next


def test_the_same_seed_decides_the_same_in_process_over_http_and_after_replay(tmp_path) -> None:
    apps = [BatchSizeOptimizer(env=persistence_env("memory://"), clock=ManualClock()) for _ in range(2)]
    try:
        sequences = []
        for app in apps:
            audit = lsts_history(app, recurrences=30, mab_seed=11)
            sequences.append([t["batch_size"] for t in audit.trials(JOB)])
            assert state_view(audit.replay(JOB)) == audit.state(JOB)  # rebuilt from events alone
        assert sequences[0] == sequences[1]
        assert any(t["why"].get("rule") == "thompson" for t in (audit.trial(JOB, n) for n in range(1, 31)))
    finally:
        for app in apps:
            app.close()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'http.db'}")
    with TestClient(create_app(settings)) as client:
        spec = job_spec(job_id=JOB, policy="lsts", batch_sizes=SIZES, mab_seed=11)
        assert client.post("/jobs", content=json.dumps(spec)).json()["policy"] == "lsts"
        over_http = []
        for _ in range(30):
            trial = client.get("/jobs/batch_size", params={"job_id": JOB}).json()
            over_http.append(trial["batch_size"])
            for epoch in range(1, 11):
                time, energy, metric = linear_workload(trial["batch_size"], epoch, trial["trial_number"])
                body = {**trial, "time": time, "energy": energy, "metric": metric, "current_epoch": epoch}
                if client.post("/report", content=json.dumps(body)).json()["stop_train"]:
                    break
    assert over_http == sequences[0]


def test_reanalysis_asks_what_the_other_policy_would_have_done(app: BatchSizeOptimizer) -> None:
    app.register_job(job_spec(job_id="test-z", batch_sizes=SIZES))
    for _ in range(12):
        train(app, "test-z")
    events = JobAudit(app).domain_events("test-z")
    own = reanalyze(events, {})
    assert own["summary"]["decision_changes"] == 0
    other = reanalyze(events, {"policy": "lsts", "tau": 0.4})
    assert other["knobs"]["counterfactual"]["policy"] == "lsts" and other["knobs"]["actual"]["policy"] == "zeus"
    assert other["summary"]["batch_size_changes"] > 0
    assert other["trials"][1]["counterfactual"]["batch_size"] == 16  # LSTS walks down first
    with pytest.raises(InvalidSpecError, match="tau"):
        reanalyze(events, {"policy": "lsts", "tau": -1.0})
    lsts_events = lsts_history(app).domain_events(JOB)
    assert reanalyze(lsts_events, {})["summary"]["decision_changes"] == 0


def test_the_server_default_policy_applies_when_the_client_names_none() -> None:
    assert Settings.from_env({"BSO_DEFAULT_POLICY": "lsts"}).default_policy == "lsts"
    with pytest.raises(SettingsError, match="BSO_DEFAULT_POLICY"):
        Settings.from_env({"BSO_DEFAULT_POLICY": "greedy"})
    app = BatchSizeOptimizer(env=persistence_env("memory://"), default_policy="lsts")
    try:
        _, spec = app.register_job(job_spec(job_id="test-default"))
        _, named = app.register_job(job_spec(job_id="test-named", policy="zeus"))
        assert (spec["policy"], named["policy"]) == ("lsts", "zeus")
        assert app.live_job("test-default").spec.policy == "lsts" and app.live_job("test-named").spec.policy == "zeus"
    finally:
        app.close()


@pytest.mark.parametrize("policy", ["zeus", "lsts"])
def test_the_bare_aggregate_decides_as_the_application_does(policy: str) -> None:
    """bench/policy.py simulates against the Job aggregate without an event store."""
    trace = WorkloadTrace(Traces.load(shipped_train_trace(), shipped_power_trace("p100")), WORKLOAD_PRESETS["cifar100"])
    app = BatchSizeOptimizer(env=persistence_env("memory://"))
    runs = []
    for client in (InProcessClient(app), AggregateClient()):
        simulator = TraceSimulator(trace, client, Knobs(mab_seed=4, policy=policy), 4, "p100", PAIRED_DRAWS)
        runs.append([(run.batch_size, run.cost, run.server_converged) for run in simulator.run(80).runs])
    app.close()
    assert runs[0] == runs[1]


def test_lsts_regret_is_below_zeus_on_paired_draws() -> None:
    """A regression guard on two cells, a few seeds and short jobs; bench/policy.py has the figures."""
    traces = Traces.load(shipped_train_trace(), shipped_power_trace("v100"))
    regrets: dict[str, list[float]] = {"zeus": [], "lsts": []}
    for workload in ("cifar100", "imagenet"):
        trace = WorkloadTrace(traces, WORKLOAD_PRESETS[workload])
        for seed in (1, 2, 3):
            for policy in regrets:
                app = BatchSizeOptimizer(env=persistence_env("memory://"))
                knobs = Knobs(mab_seed=seed, policy=policy)
                simulator = TraceSimulator(trace, InProcessClient(app), knobs, seed, "v100", PAIRED_DRAWS)
                regrets[policy].append(simulator.run(60).summary["regret_oracle_recurrences"])
                app.close()
    assert statistics.fmean(regrets["lsts"]) < statistics.fmean(regrets["zeus"])


def test_an_lsts_jobs_arms_read_like_zeus_arms_for_the_views(app: BatchSizeOptimizer) -> None:
    state = lsts_history(app, recurrences=15).state(JOB)
    arms = {arm["batch_size"]: arm for arm in state["arms"]}
    assert sorted(arms) == state["lsts"]["arms"]
    for size, arm in arms.items():
        observed = state["lsts"]["log_costs"][str(size)]
        assert arm["num_observations"] == len(observed)
        assert arm["mean"] == pytest.approx(-math.exp(statistics.fmean(observed)))  # reward = -cost
        assert arm["precision"] > 0
