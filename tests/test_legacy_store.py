"""A store written by bso before the JobSpec change loads, replays, reads and reanalyses as it did.

``tests/fixtures/legacy.db`` (with a snapshot at version 200), its views and its
export were made by ``tests/fixtures/make_legacy.py`` with the code of commit
d622bb2; they are never regenerated, so any change to how old events or snapshots
are read shows up here.
"""

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from application.archive import import_lines
from application.audit import JobAudit, state_view
from application.reanalysis import reanalyze
from application.service import BatchSizeOptimizer
from domain.spec import LSTS_KNOB_NAMES
from infrastructure.settings import persistence_env

FIXTURES = Path(__file__).parent / "fixtures"
JOB = "legacy-job"
# Fields views gained after the fixture was made; every other field must read exactly as before.
ADDED_FIELDS = {
    "policy", *LSTS_KNOB_NAMES, "lsts", "cost_bound", "step", "observation",
    "early_stop", "stop_window", "bound_escalation", "predictive_stop", "bound_scale", "stopped_in_a_row",
    "recommendation", "recorded_cost",
}


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return _as_views_read_now(json.loads((FIXTURES / "legacy_views.json").read_text()))


def _as_views_read_now(value: Any, key: str = "") -> Any:
    """The fixture's views with the deliberate changes to how views read since it was made:
    an infinite arm precision is null with a flag (not the string "inf"); pruning rounds
    in the state and in trials' whys count from 1."""
    if isinstance(value, list):
        return [_as_views_read_now(item, key) for item in value]
    if not isinstance(value, dict):
        return value
    value = {name: _as_views_read_now(item, name) for name, item in value.items()}
    if {"batch_size", "mean", "precision", "num_observations"} <= value.keys():
        infinite = value["precision"] == "inf"
        value.update(precision=None if infinite else value["precision"], precision_infinite=infinite)
    if key == "pruning":  # the fixture counted rounds from 0 and had no rounds_done / done
        done = value["round"] >= value["num_rounds"]
        value.update(round=None if done else value["round"] + 1, rounds_done=value["round"], done=done)
    if key == "why" and "round" in value:
        value["round"] += 1
    return value


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[JobAudit]:
    shutil.copy(FIXTURES / "legacy.db", tmp_path / "legacy.db")
    app = BatchSizeOptimizer(env=persistence_env(f"sqlite:///{tmp_path / 'legacy.db'}"))
    yield JobAudit(app)
    app.close()


def _json(value: Any) -> Any:
    """The view as JSON, without the fields added since the fixture was made."""
    return _without_added(json.loads(json.dumps(value, sort_keys=True)))


def _without_added(value: Any) -> Any:
    if isinstance(value, dict):
        if "total" in value and "succeeded" in value:  # trial counts gained converged / not converged
            value = {key: item for key, item in value.items() if key not in ("converged", "not_converged")}
        if "cursor" in value:  # job list rows gained what the dashboard's list shows
            gained = ("best_arm", "pruning", "updated_at", "gpu_model", "default_batch_size", "recommended_batch_size", "settled", "savings_fraction")
            value = {key: item for key, item in value.items() if key not in gained}
        if "next_after" in value and "jobs" in value:  # job pages gained the offset of sorted listings
            value = {key: item for key, item in value.items() if key != "next_offset"}
        return {key: _without_added(item) for key, item in value.items() if key not in ADDED_FIELDS}
    if isinstance(value, list):
        return [_without_added(item) for item in value]
    return value


def test_current_and_past_states_read_as_before(audit: JobAudit, expected: dict[str, Any]) -> None:
    assert _json(audit.state(JOB)) == expected["state"]  # loaded through the version-200 snapshot
    assert _json(audit.state(JOB, version=10)) == expected["state_v10"]
    assert _json(audit.state("legacy-deleted")) == expected["deleted_state"]
    assert _json(audit.list_jobs()) == expected["jobs"]


def test_a_full_replay_ignoring_the_snapshot_reaches_the_same_state(audit: JobAudit, expected: dict[str, Any]) -> None:
    assert _json(state_view(audit.replay(JOB))) == expected["state"]


def test_trials_and_events_read_as_before(audit: JobAudit, expected: dict[str, Any]) -> None:
    trials = audit.trials(JOB)
    assert _json(trials) == expected["trials"]
    assert _json(audit.trial(JOB, 1)) == expected["trial_1"]
    assert _json(audit.trial(JOB, len(trials))) == expected["trial_last"]
    assert _json(audit.events(JOB, after=0, limit=5)) == expected["events_page"]


def _rounded(value: Any) -> Any:
    """Numbers to 12 significant digits: totals are now priced from the summed energy and
    time (both sides alike) rather than summed per trial, which moves the last bit."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def test_reanalysis_of_old_events_decides_as_before(audit: JobAudit, expected: dict[str, Any]) -> None:
    events = audit.domain_events(JOB)
    assert _rounded(_json(reanalyze(events, {}))) == _rounded(expected["reanalysis_own"])
    knobs = {"beta_knob": None, "window_size": 2, "eta_knob": 0.7}
    expected_knobs = _actual_priced_at(expected["reanalysis_knobs"], eta=0.7)
    assert _rounded(_json(reanalyze(events, knobs, resample_seed=3))) == _rounded(expected_knobs)


def _actual_priced_at(report: dict[str, Any], eta: float) -> dict[str, Any]:
    """The fixture's report with its actual side priced at the counterfactual eta, as both sides
    now are (the fixture priced the actual side at the job's own eta)."""
    def priced(side: dict[str, Any]) -> dict[str, Any]:
        if side.get("energy") is None:
            return side
        power = report["summary"]["actual"]["max_power"]
        return {**side, "cost": eta * side["energy"] + (1 - eta) * power * side["time"]}

    trials = [{**trial, "actual": priced(trial["actual"])} for trial in report["trials"]]
    actual = {**priced(report["summary"]["actual"]), "eta_knob": eta}
    return {**report, "trials": trials, "summary": {**report["summary"], "actual": actual}}


def test_an_old_export_imports_and_reads_as_before(expected: dict[str, Any]) -> None:
    app = BatchSizeOptimizer(env=persistence_env("memory://"))
    try:
        with open(FIXTURES / "legacy_job.jsonl", encoding="utf-8") as lines:
            imported = import_lines(app, lines)
        assert imported["events"] == expected["state"]["version"]
        assert _json(JobAudit(app).state(JOB)) == expected["state"]
    finally:
        app.close()
