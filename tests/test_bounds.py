"""The stop rule's guards against drift: a recent reference (stop_window), an escalating bound
(bound_escalation) and a predicted stop (predictive_stop), driven through the application."""

from typing import Any

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from application.audit import JobAudit
from application.service import BatchSizeOptimizer
from domain.errors import InvalidSpecError
from domain.reporting import EpochReport
from domain.spec import JobSpec
from infrastructure.settings import Settings, persistence_env
from tests.helpers import CLIENT_SPEC, job_spec

# eta 0.5 and no time: a run's cost is half its energy.
COST = 0.5


@pytest.fixture
def app() -> BatchSizeOptimizer:
    return BatchSizeOptimizer(env=persistence_env("memory://"))


def one_size_job(app: BatchSizeOptimizer, job_id: str, **knobs: Any) -> None:
    """A job of one batch size: after its first run, every trial plays that size."""
    spec = job_spec(job_id=job_id, batch_sizes=[32], default_batch_size=32, num_pruning_rounds=1, max_epochs=10)
    app.register_job({**spec, **knobs})


def run(app: BatchSizeOptimizer, job_id: str, cost: float, epochs: int = 1) -> dict[str, Any]:
    """One trial reaching the target after ``epochs`` epochs at ``cost`` (reported once, at the end)."""
    trial = app.predict(job_id)
    number, size = trial["trial_number"], trial["batch_size"]
    bound = app.run_cost_bound(job_id, number)
    answer = app.report(job_id, EpochReport(number, size, 0.0, cost / COST, 1.0, epochs))
    return {"number": number, "bound": bound, **answer}


def stopped(answers: list[dict[str, Any]]) -> list[bool]:
    return [not answer["converged"] for answer in answers]


def test_each_policy_gets_its_own_guards_unless_the_spec_sets_them() -> None:
    base = job_spec(job_id="test-g")
    zeus, lsts = JobSpec.create({**base, "policy": "zeus"}), JobSpec.create({**base, "policy": "lsts"})
    assert (zeus.stop_window, zeus.bound_escalation, zeus.predictive_stop) == (0, False, False)
    assert (lsts.stop_window, lsts.bound_escalation, lsts.predictive_stop) == (20, True, True)
    chosen = JobSpec.create({**base, "policy": "lsts", "stop_window": 0, "bound_escalation": False})
    assert (chosen.stop_window, chosen.bound_escalation) == (0, False)
    # Read back from a stored record written before the guards existed: the job ran without them.
    record = {key: value for key, value in lsts.to_record().items() if key not in ("stop_window", "bound_escalation", "predictive_stop")}
    old = JobSpec.from_record(record)
    assert (old.stop_window, old.bound_escalation, old.predictive_stop) == (0, False, False)


@pytest.mark.parametrize(
    ("field", "value"), [("stop_window", -1), ("stop_window", 1.5), ("bound_escalation", "yes"), ("predictive_stop", 1)]
)
def test_impossible_guards_are_refused_by_name(field: str, value: Any) -> None:
    with pytest.raises(InvalidSpecError) as refused:
        JobSpec.create({**job_spec(job_id="test-g"), field: value})
    assert refused.value.field == field


def test_a_reanalysis_under_another_policy_takes_that_policys_guards() -> None:
    zeus = JobSpec.create({**job_spec(job_id="test-g"), "policy": "zeus"})
    assert zeus.with_knobs({"policy": "lsts"}).stop_window == 20
    assert zeus.with_knobs({"policy": "lsts", "stop_window": 5}).stop_window == 5
    assert zeus.with_knobs({"eta_knob": 0.9}).stop_window == 0


def test_zeus_alone_stops_every_run_once_costs_outgrow_beta_times_the_first(app: BatchSizeOptimizer) -> None:
    one_size_job(app, "test-plain", policy="zeus")
    answers = [run(app, "test-plain", 100.0 * 1.1**i) for i in range(16)]
    # 100 x 1.1^8 = 214 > 2 x 100: from then on every run is stopped, whatever it costs.
    assert stopped(answers) == [False] * 8 + [True] * 8
    assert answers[-1]["bound"] == 200.0
    assert app.live_job("test-plain").stopped_in_a_row == 8


def test_a_stop_window_makes_zeus_follow_costs_that_grow(app: BatchSizeOptimizer) -> None:
    one_size_job(app, "test-window", policy="zeus", stop_window=3)
    answers = [run(app, "test-window", 100.0 * 1.1**i) for i in range(16)]
    assert stopped(answers) == [False] * 16
    # The reference is the cheapest of the last 3 converged runs, not the first run.
    assert answers[-1]["bound"] == pytest.approx(2 * 100.0 * 1.1**12)


def test_escalation_doubles_the_bound_per_stopped_run_until_one_converges(app: BatchSizeOptimizer) -> None:
    one_size_job(app, "test-escalate", policy="zeus", bound_escalation=True)
    run(app, "test-escalate", 100.0)
    answers = [run(app, "test-escalate", cost) for cost in (900.0, 900.0, 700.0, 300.0)]
    # Bounds 200, 400 (one stopped before), 800 (two): 700 fits; then back to 200.
    assert [answer["bound"] for answer in answers] == [200.0, 400.0, 800.0, 200.0]
    assert stopped(answers) == [True, True, False, True]
    job = app.live_job("test-escalate")
    assert job.stopped_in_a_row == 1


def test_zeus_without_escalation_keeps_its_bound(app: BatchSizeOptimizer) -> None:
    one_size_job(app, "test-flat", policy="zeus")
    run(app, "test-flat", 100.0)
    answers = [run(app, "test-flat", 900.0) for _ in range(3)]
    assert [answer["bound"] for answer in answers] == [200.0, 200.0, 200.0]


def test_stopped_in_a_row_counts_trials_in_dispatch_order(app: BatchSizeOptimizer) -> None:
    one_size_job(app, "test-order", policy="zeus", bound_escalation=True)
    run(app, "test-order", 100.0)
    run(app, "test-order", 900.0)  # trial 2: stopped, one in a row
    third = app.predict("test-order")
    app.predict("test-order")  # trial 4, in flight beside trial 3
    assert app.run_cost_bound("test-order", third["trial_number"]) == 400.0
    # Trial 4 is stopped first, then trial 3 converges: in dispatch order, 4 came after 3.
    app.report("test-order", EpochReport(4, 32, 0.0, 5000.0 / COST, 1.0, 1))
    assert app.live_job("test-order").stopped_in_a_row == 2
    app.report("test-order", EpochReport(3, 32, 0.0, 150.0 / COST, 1.0, 1))
    assert app.live_job("test-order").stopped_in_a_row == 1
    fifth = app.predict("test-order")
    assert app.run_cost_bound("test-order", fifth["trial_number"]) == 400.0


def test_a_late_convergence_of_an_earlier_trial_does_not_reset_the_count(app: BatchSizeOptimizer) -> None:
    one_size_job(app, "test-late", policy="zeus", bound_escalation=True)
    run(app, "test-late", 100.0)
    early = app.predict("test-late")
    run(app, "test-late", 900.0)  # trial 3 converges? no: stopped (bound 200)
    run(app, "test-late", 100.0)  # trial 4 converges: the count restarts from 0
    run(app, "test-late", 900.0)  # trial 5 stopped: one in a row
    app.report("test-late", EpochReport(early["trial_number"], 32, 0.0, 150.0 / COST, 1.0, 1))
    assert app.live_job("test-late").stopped_in_a_row == 1


def test_an_lsts_bandit_bound_comes_from_the_arms_recent_runs_with_a_window(app: BatchSizeOptimizer) -> None:
    costs = [100.0, 100.0, 190.0, 190.0]  # each within the bound of its run
    for window, reference in ((0, (100.0 * 190.0) ** 0.5), (2, 190.0)):
        job_id = f"test-lsts-{window}"
        one_size_job(app, job_id, policy="lsts", stop_window=window, bound_escalation=False)
        for cost in costs:
            run(app, job_id, cost)
        # beta_bandit x exp(mean log cost): over all runs, or over the last two converged ones.
        assert run(app, job_id, 10.0)["bound"] == pytest.approx(2.0 * reference)


def test_lsts_escalates_its_bound_by_default(app: BatchSizeOptimizer) -> None:
    one_size_job(app, "test-lsts-escalate", policy="lsts")
    run(app, "test-lsts-escalate", 100.0)
    answers = [run(app, "test-lsts-escalate", 1000.0) for _ in range(3)]
    assert [answer["bound"] for answer in answers] == pytest.approx([200.0, 400.0, 800.0])
    assert stopped(answers) == [True, True, True]


@pytest.mark.parametrize("policy", ["zeus", "lsts"])
def test_predictive_stop_ends_a_run_whose_first_epochs_promise_too_much(app: BatchSizeOptimizer, policy: str) -> None:
    for predictive in (False, True):
        job_id = f"test-predict-{policy}-{predictive}"
        one_size_job(app, job_id, policy=policy, predictive_stop=predictive, bound_escalation=False)
        run(app, job_id, 400.0, epochs=4)  # converged in 4 epochs: bound 800 from now on
        trial = app.predict(job_id)
        # 250 after one epoch: at least 4 epochs make 1000 > 800 (the run's cost now is within it).
        answer = app.report(job_id, EpochReport(trial["trial_number"], 32, 0.0, 250.0 / COST, 0.0, 1))
        assert answer["stop_train"] is predictive
        if predictive:
            assert not answer["converged"]
            assert "predicted" in answer["message"]
            assert app.live_job(job_id).stopped_in_a_row == 1


def test_predictive_stop_lets_a_run_go_on_that_may_fit(app: BatchSizeOptimizer) -> None:
    one_size_job(app, "test-fits", policy="lsts", predictive_stop=True)
    run(app, "test-fits", 400.0, epochs=4)
    trial = app.predict("test-fits")
    # 150 after one epoch: 600 over 4 epochs is within 800.
    answer = app.report("test-fits", EpochReport(trial["trial_number"], 32, 0.0, 150.0 / COST, 0.0, 1))
    assert not answer["stop_train"]


@pytest.mark.parametrize("policy", ["zeus", "lsts"])
def test_the_state_view_shows_the_bound_and_warns_of_stops_in_a_row(app: BatchSizeOptimizer, policy: str) -> None:
    job_id = f"test-view-{policy}"
    # (A window keeps LSTS's reference on converged runs: its penalised failures would raise it.)
    one_size_job(app, job_id, policy=policy, stop_window=5, bound_escalation=False)
    run(app, job_id, 100.0)
    view = JobAudit(app).state(job_id)["early_stop"]
    assert view["bound"] == pytest.approx(200.0) and view["stopped_in_a_row"] == 0 and view["warning"] is None
    assert view["judged"] == ("at_each_report" if policy == "zeus" else "at_dispatch")
    for _ in range(3):
        run(app, job_id, 1000.0)
    view = JobAudit(app).state(job_id)["early_stop"]
    assert view["stopped_in_a_row"] == 3
    assert "3 trials in a row were stopped by the cost bound" in view["warning"]


@pytest.mark.parametrize("policy", ["zeus", "lsts"])
def test_operators_see_stops_in_a_row_in_the_job_view_and_in_metrics(tmp_path, policy: str) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'bounds.db'}")
    spec = {**CLIENT_SPEC, "job_id": "api-drift", "batch_sizes": [32], "default_batch_size": 32, "max_epochs": 5,
            "num_pruning_rounds": 1, "policy": policy, "stop_window": 5, "bound_escalation": False}
    with TestClient(create_app(settings)) as client:
        assert client.post("/jobs", json=spec).status_code == 201
        for cost in (100.0, 1000.0, 1000.0, 1000.0):
            trial = client.get("/jobs/batch_size", params={"job_id": "api-drift"}).json()
            result = {**trial, "time": 0.0, "energy": cost / COST, "metric": 1.0, "current_epoch": 1}
            assert client.post("/report", json=result).status_code == 200
        early_stop = client.get("/v1/jobs/api-drift").json()["early_stop"]
        assert early_stop["stopped_in_a_row"] == 3 and early_stop["bound"] == pytest.approx(200.0)
        assert early_stop["warning"].startswith("3 trials in a row were stopped by the cost bound")
        scraped = client.get("/metrics").text
        assert "bso_jobs_stopped_in_a_row 1.0" in scraped
        trial = client.get("/jobs/batch_size", params={"job_id": "api-drift"}).json()
        converged = {**trial, "time": 0.0, "energy": 150.0 / COST, "metric": 1.0, "current_epoch": 1}
        assert client.post("/report", json=converged).json()["converged"]
        assert "bso_jobs_stopped_in_a_row 0.0" in client.get("/metrics").text


def test_predictive_stop_ends_a_run_whose_next_epoch_would_pass_the_bound(app: BatchSizeOptimizer) -> None:
    one_size_job(app, "test-next", policy="zeus", predictive_stop=True)
    run(app, "test-next", 400.0, epochs=4)  # bound 800 from now on
    trial = app.predict("test-next")
    number = trial["trial_number"]
    # 600 after 5 epochs: a sixth makes about 720, within 800: go on.
    assert not app.report("test-next", EpochReport(number, 32, 0.0, 600.0 / COST, 0.0, 5))["stop_train"]
    # 700 after 5 epochs (as reported now): a sixth makes about 840 > 800: stop before paying for it.
    answer = app.report("test-next", EpochReport(number, 32, 0.0, 700.0 / COST, 0.0, 5))
    assert answer["stop_train"] and not answer["converged"] and "predicted(840.0)" in answer["message"]
