"""Reanalysis: the job's own knobs reproduce history; other knobs re-decide it honestly."""

from functools import partial
from typing import Any, Iterator

import pytest

from application.audit import JobAudit
from application.reanalysis import reanalyze
from application.service import BatchSizeOptimizer
from domain.cost import energy_time_cost
from domain.reporting import EpochReport
from domain.spec import KNOB_NAMES, POLICIES
from infrastructure.settings import persistence_env
from tests.audit_helpers import ManualClock, linear_workload, train
from tests.helpers import job_spec

JOB = "test-re"


@pytest.fixture
def app() -> Iterator[BatchSizeOptimizer]:
    optimizer = BatchSizeOptimizer(env=persistence_env("memory://"), clock=ManualClock())
    yield optimizer
    optimizer.close()


def recorded_history(app: BatchSizeOptimizer, recurrences: int = 24, **spec: Any) -> JobAudit:
    """Pruning then bandit, with a Concurrent trial, an ended trial and per-epoch reports."""
    app.register_job(job_spec(job_id=JOB, **spec))
    first = app.predict(JOB)  # Exploration of 32, left running...
    concurrent = app.predict(JOB)  # ...so this one is Concurrent
    app.end_trial(JOB, concurrent["trial_number"], concurrent["batch_size"])
    for epoch in (1, 2):
        time, energy, metric = linear_workload(32, epoch, first["trial_number"])
        app.report(JOB, EpochReport(first["trial_number"], 32, time, energy, metric, epoch))
    for _ in range(recurrences):
        train(app, JOB)
    return JobAudit(app)


def own_knobs(report: dict[str, Any]) -> dict[str, Any]:
    """Every knob of a report's job at the job's own value, the policy and the seed included."""
    actual = report["knobs"]["actual"]
    assert set(actual) == set(KNOB_NAMES)
    return dict(actual)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("explicit", [False, True], ids=["no knobs", "every knob as recorded"])
def test_own_knobs_reproduce_decisions_and_totals_exactly(app: BatchSizeOptimizer, policy: str, explicit: bool) -> None:
    audit = recorded_history(app, policy=policy)
    assert audit.state(JOB)["stage"] == "MAB"
    events = audit.domain_events(JOB)
    report = reanalyze(events, own_knobs(reanalyze(events, {})) if explicit else {})
    assert report["knobs"]["counterfactual"] == report["knobs"]["actual"]
    trials = audit.trials(JOB)
    assert [t["counterfactual"]["batch_size"] for t in report["trials"]] == [t["batch_size"] for t in trials]
    assert all(t["changed"] == [] and t["counterfactual"]["data"] == "recorded" for t in report["trials"])
    for diff in report["trials"]:
        assert diff["actual"]["cost"] == diff["counterfactual"]["cost"] == diff["actual"]["recorded_cost"]
    summary = report["summary"]
    assert summary["decision_changes"] == summary["batch_size_changes"] == 0
    for total in ("trials", "energy", "time", "cost", "eta_knob", "max_power"):
        assert summary["counterfactual"][total] == summary["actual"][total]
    assert summary["actual"]["energy"] == sum(t["energy"] for t in trials if t["energy"] is not None)
    assert summary["actual"]["time"] == sum(t["time"] for t in trials if t["time"] is not None)
    assert summary["counterfactual"]["complete"]
    live = audit.state(JOB)
    end = summary["counterfactual_end_state"]
    assert (end["min_cost"], end["min_cost_batch_size"], end["arms"]) == (live["min_cost"], live["min_cost_batch_size"], live["arms"])


def test_larger_beta_marks_cost_bound_stops_unknown_beyond_their_last_epoch(app: BatchSizeOptimizer) -> None:
    audit = recorded_history(app)
    cut_short = [t for t in audit.trials(JOB) if t["stop_reason"] == "cost_bound"]
    assert cut_short, "the scripted history must contain a trial stopped by the cost bound"
    report = reanalyze(audit.domain_events(JOB), {"beta_knob": 50.0})
    by_number = {t["number"]: t for t in report["trials"]}
    for trial in cut_short:
        counterfactual = by_number[trial["number"]]["counterfactual"]
        assert counterfactual["outcome"] == "unknown"
        assert counterfactual["unknown_beyond_epoch"] == trial["epoch"]
        assert counterfactual["converged"] is None
    assert not report["summary"]["counterfactual"]["complete"]
    assert report["summary"]["counterfactual"]["unknown_trials"]


def test_smaller_beta_stops_earlier_exactly_at_the_first_epoch_over_the_bound(app: BatchSizeOptimizer) -> None:
    audit = recorded_history(app, recurrences=6)
    report = reanalyze(audit.domain_events(JOB), {"beta_knob": 1.0})
    re_decided = [
        t
        for t in report["trials"]
        if t["counterfactual"]["stop_reason"] == "cost_bound" and t["counterfactual"]["data"] == "recorded"
    ]
    assert re_decided
    first = re_decided[0]
    finished_before = [
        t["counterfactual"]["cost"]
        for t in report["trials"]
        if t["number"] < first["number"] and t["counterfactual"]["outcome"] == "finished"
    ]
    bound = 1.0 * min(finished_before)
    epochs = audit.trial(JOB, first["number"])["epochs"]
    expected = next(epoch for epoch in epochs if epoch["cost"] > bound)
    counterfactual = first["counterfactual"]
    assert first["actual"]["stop_reason"] == "reached_target" and "converged" in first["changed"]
    assert counterfactual["epochs"] == expected["epoch"]
    assert (counterfactual["time"], counterfactual["energy"], counterfactual["cost"]) == (
        expected["time"],
        expected["energy"],
        expected["cost"],
    )


@pytest.mark.parametrize("policy", POLICIES)
def test_another_eta_prices_both_sides_exactly_as_the_formula_says(app: BatchSizeOptimizer, policy: str) -> None:
    """A what-if compares decisions: the same run costs the same on either side."""
    audit = recorded_history(app, policy=policy)
    eta, max_power = 0.9, job_spec()["max_power"]
    report = reanalyze(audit.domain_events(JOB), {"eta_knob": eta})
    checked = 0
    for diff in report["trials"]:
        for side in (diff["actual"], diff["counterfactual"]):
            if side["time"] is None:
                assert side["cost"] is None
                continue
            assert side["cost"] == eta * side["energy"] + (1 - eta) * max_power * side["time"]
            checked += 1
        if diff["actual"]["recorded_cost"] is not None:  # what the job recorded, at its own eta
            assert diff["actual"]["recorded_cost"] == energy_time_cost(diff["actual"]["energy"], diff["actual"]["time"], 0.5, max_power)
    assert checked >= 40
    summary = report["summary"]
    for side in (summary["actual"], summary["counterfactual"]):
        assert (side["eta_knob"], side["max_power"]) == (eta, max_power)
        assert side["cost"] == eta * side["energy"] + (1 - eta) * max_power * side["time"]
    if summary["decision_changes"] == 0:
        assert summary["counterfactual"]["cost"] == summary["actual"]["cost"]


def test_a_change_of_eta_alone_prices_one_run_the_same_on_both_sides(app: BatchSizeOptimizer) -> None:
    """The README's curl session: one run, reanalysed with eta 0.9."""
    app.register_job(job_spec(job_id=JOB))
    trial = app.predict(JOB)
    app.report(JOB, EpochReport(trial["trial_number"], trial["batch_size"], 60.0, 9000.0, 0.3, 1))
    app.report(JOB, EpochReport(trial["trial_number"], trial["batch_size"], 120.0, 18000.0, 0.9, 2))
    summary = reanalyze(JobAudit(app).domain_events(JOB), {"eta_knob": 0.9})["summary"]
    for side in ("actual", "counterfactual"):
        assert {key: summary[side][key] for key in ("energy", "time", "cost")} == {
            "energy": 18000.0, "time": 120.0, "cost": 0.9 * 18000.0 + 0.1 * 300.0 * 120.0,
        }


def test_sizes_never_run_have_no_data_and_others_are_resampled_with_a_label(app: BatchSizeOptimizer) -> None:
    app.register_job(job_spec(job_id=JOB))
    workload = partial(linear_workload, smallest_converging=32)  # 16 fails, so 8 is never tried
    for _ in range(16):
        train(app, JOB, workload)
    audit = JobAudit(app)
    actual_sizes = {t["batch_size"]: t["number"] for t in audit.trials(JOB)}
    assert 8 not in actual_sizes
    version_before = audit.latest_version(audit.resolve(JOB))
    report = reanalyze(audit.domain_events(JOB), {"num_pruning_rounds": 0, "mab_num_explorations": 1})
    counterfactuals = [t["counterfactual"] for t in report["trials"]]
    no_data = [c for c in counterfactuals if c["batch_size"] == 8]
    assert no_data and all(c["data"] == "no_data" and c["outcome"] == "no_data" and c["time"] is None for c in no_data)
    resampled = [c for c in counterfactuals if c["data"] == "resampled"]
    assert resampled
    for counterfactual in resampled:
        source = audit.trial(JOB, counterfactual["source_trial"])
        assert source["batch_size"] == counterfactual["batch_size"] and source["status"] == "Succeeded"
    summary = report["summary"]["counterfactual"]
    assert not summary["complete"] and summary["no_data_trials"]
    assert reanalyze(audit.domain_events(JOB), {"num_pruning_rounds": 0, "mab_num_explorations": 1}) == report
    assert audit.latest_version(audit.resolve(JOB)) == version_before  # nothing written


@pytest.mark.parametrize("policy", POLICIES)
def test_another_seed_changes_bandit_draws_but_not_pruning(app: BatchSizeOptimizer, policy: str) -> None:
    audit = recorded_history(app, policy=policy)
    report = reanalyze(audit.domain_events(JOB), {"mab_seed": 12345})
    pruning = [t for t in report["trials"] if t["actual"]["kind"] != "MAB"]
    assert all(t["counterfactual"]["batch_size"] == t["actual"]["batch_size"] for t in pruning)
    assert report["knobs"]["counterfactual"]["mab_seed"] == 12345
    assert report["knobs"]["actual"]["mab_seed"] == 1
