"""The trace-driven simulator reproduces Zeus's reference run (SPEC section 4) exactly."""

import json
from typing import Any

import pandas as pd
import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from api.cli import main
from application.drift import GROW
from application.service import BatchSizeOptimizer
from application.simulator import (
    MAX_TRIES_PER_RECURRENCE,
    PAIRED_DRAWS,
    AggregateClient,
    InProcessClient,
    Knobs,
    TraceSimulator,
    WorkloadTrace,
    oracle_recurrence_cost,
    settled_after,
    trainer_bounds_runs,
)
from application.traces import Workload
from domain.cost import energy_time_cost
from domain.reporting import EpochReport
from domain.spec import LSTS, ZEUS
from infrastructure.optimizer_http import HttpOptimizerClient
from infrastructure.settings import Settings, persistence_env
from infrastructure.trace_data import WORKLOAD_PRESETS, Traces, shipped_power_trace, shipped_train_trace


def _expand(text: str) -> list[int]:
    sizes: list[int] = []
    for token in text.replace("|", " ").split():
        size, _, count = token.partition("x")
        sizes.extend([int(size)] * int(count or 1))
    return sizes


REFERENCE_SEQUENCE = _expand(
    "192 156 128 96 72 64 56 48 32 24 16 12 8 | 48 32 24 16 12 56 64 72 96 128 156 192 |"
    " 48 32 48x13 32 48x9 32 48x4 32 48x112 96 48x15 96 48x26"
)


@pytest.fixture(scope="module")
def librispeech_v100() -> WorkloadTrace:
    traces = Traces.load(shipped_train_trace(), shipped_power_trace("v100"))
    return WorkloadTrace(traces, WORKLOAD_PRESETS["librispeech"])


def test_reference_sequence_has_211_runs() -> None:
    assert len(REFERENCE_SEQUENCE) == 211
    assert REFERENCE_SEQUENCE[12] == 8


def test_reference_run_in_process(librispeech_v100: WorkloadTrace) -> None:
    optimizer = BatchSizeOptimizer(env=persistence_env("memory://"))
    simulator = TraceSimulator(librispeech_v100, InProcessClient(optimizer), Knobs(), seed=1, gpu_model="v100")

    result = simulator.run(210)

    assert [run.batch_size for run in result.runs] == REFERENCE_SEQUENCE
    failed = [run for run in result.runs if not run.reached_target]
    assert [(run.recurrence, run.batch_size) for run in failed] == [(13, 8)]
    assert not failed[0].server_converged
    assert all(run.server_converged for run in result.runs if run.reached_target)
    # The application recorded the same story: one trial per run, in order.
    job = optimizer.live_job(result.job_id)
    assert job.trial_batch_sizes.tolist() == REFERENCE_SEQUENCE
    assert result.summary["final_batch_size"] == 48
    assert result.summary["settled_after_recurrence"] == 184


def test_cli_json_reproduces_reference(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--workload", "librispeech", "--gpu", "v100", "--seed", "1", "--mab-seed", "1", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["selected_batch_sizes"] == REFERENCE_SEQUENCE
    assert len(document["recurrences"]) == 210
    summary = document["summary"]
    assert summary["oracle"]["batch_size"] == 48
    assert 0 < summary["energy_saved_fraction"] < 1
    assert summary["cumulative_cost"] == pytest.approx(sum(run["cost"] for run in document["runs"]))


def test_over_http_matches_in_process(librispeech_v100: WorkloadTrace) -> None:
    optimizer = BatchSizeOptimizer(env=persistence_env("memory://"))
    app = create_app(Settings(database_url="memory://"), optimizer=optimizer)
    with TestClient(app) as http:
        simulator = TraceSimulator(librispeech_v100, HttpOptimizerClient(http), Knobs(), seed=1, gpu_model="v100")
        result = simulator.run(40)

    assert [run.batch_size for run in result.runs] == REFERENCE_SEQUENCE[:41]


def test_another_sampling_seed_changes_the_runs_not_the_pruning_start(librispeech_v100: WorkloadTrace) -> None:
    optimizer = BatchSizeOptimizer(env=persistence_env("memory://"))
    simulator = TraceSimulator(librispeech_v100, InProcessClient(optimizer), Knobs(), seed=7, gpu_model="v100")

    result = simulator.run(30)

    assert [run.batch_size for run in result.runs][:2] == [192, 156]
    assert len(result.recurrences) == 30
    assert all(recurrence.converged for recurrence in result.recurrences)


def test_settled_after() -> None:
    assert settled_after([192, 48, 96, 48, 48]) == 3
    assert settled_after([48, 48]) == 0


def test_cli_rejects_unknown_dataset_without_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--dataset", "mnist"])

    assert code == 1
    assert "--network" in capsys.readouterr().err


def test_plot_is_a_png(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "simulation.png"

    code = main(["simulate", "--recurrences", "30", "--plot", str(target)])

    assert code == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "settled after recurrence" in capsys.readouterr().out


def test_without_drift_the_regret_is_cumulative_over_the_oracle(librispeech_v100: WorkloadTrace) -> None:
    simulator = TraceSimulator(librispeech_v100, AggregateClient(), Knobs(policy=LSTS, mab_seed=3), 3, "v100", PAIRED_DRAWS)

    summary = simulator.run(100).summary

    oracle = oracle_recurrence_cost(librispeech_v100, 0.5)
    assert summary["regret_oracle_recurrences"] == pytest.approx((summary["cumulative_cost"] - 100 * oracle) / oracle, rel=1e-12)
    assert summary["bricked_recurrences"] == 0
    assert summary["drift"] == {"scenario": "none", "g": None, "b_old": 48, "b_new": None}


# A toy trace: one batch size, one power limit, one run that reaches the target at epoch 10.
# Every epoch costs 0.5 x 100 J + 0.5 x 250 W x 1 s = 175, so epoch k's cumulative cost is 175 k.
TOY = Workload("toy", "net", "sgd", target_metric=0.5, max_epochs=16, default_batch_size=32)
EPOCH_COST = 175.0


@pytest.fixture(scope="module")
def toy_trace() -> WorkloadTrace:
    train = pd.DataFrame([{"dataset": "toy", "network": "net", "batch_size": 32, "optimizer": "sgd",
                           "learning_rate": 0.1, "run": 1, "target_metric": 0.5, "target_epoch": 10.0}])
    power = pd.DataFrame([{"dataset": "toy", "network": "net", "batch_size": 32, "optimizer": "sgd",
                           "power_limit": 250, "time_per_epoch": 1.0, "average_power": 100.0}])
    return WorkloadTrace(Traces.join(train, power), TOY)


class ScriptedServer:
    """Always dispatches batch size 32 under a fixed cost bound and judges reports as the
    service does; ``stops_at_epoch_1`` plays a server whose predictive stop fires."""

    def __init__(self, bound: float | None, stops_at_epoch_1: bool = False) -> None:
        self.bound = bound
        self.stops_at_epoch_1 = stops_at_epoch_1
        self.trials = 0
        self.reports: list[EpochReport] = []

    def register(self, spec: dict[str, Any]) -> str:
        return "toy-1"

    def predict(self, job_id: str) -> tuple[int, int]:
        self.trials += 1
        return 32, self.trials

    def report(self, job_id: str, report: EpochReport) -> dict[str, Any]:
        self.reports.append(report)
        within = self.bound is None or energy_time_cost(report.energy, report.time, 0.5, 250.0) <= self.bound
        reached = report.metric >= TOY.target_metric
        stop = not within or reached or report.epoch >= TOY.max_epochs or (self.stops_at_epoch_1 and report.epoch == 1)
        return {"stop_train": stop, "converged": reached and within, "message": ""}

    def run_cost_bound(self, job_id: str, trial_number: int) -> float | None:
        return self.bound


def _toy_run(trace: WorkloadTrace, server: ScriptedServer, knobs: Knobs, recurrences: int = 1, drift: str = "none"):
    return TraceSimulator(trace, server, knobs, 1, "v100", PAIRED_DRAWS, drift).run(recurrences)


def test_only_plain_zeus_keeps_the_trainers_own_bound() -> None:
    assert trainer_bounds_runs(Knobs(policy=ZEUS))
    assert trainer_bounds_runs(Knobs(policy=ZEUS, stop_window=0, bound_escalation=False))
    assert not trainer_bounds_runs(Knobs(policy=ZEUS, stop_window=20))
    assert not trainer_bounds_runs(Knobs(policy=ZEUS, bound_escalation=True))
    assert not trainer_bounds_runs(Knobs(policy=LSTS))


def test_a_run_stops_at_the_first_epoch_over_the_servers_bound(toy_trace: WorkloadTrace) -> None:
    server = ScriptedServer(bound=3 * EPOCH_COST)

    result = _toy_run(toy_trace, server, Knobs(policy=LSTS), recurrences=2)

    # Epoch 3 costs exactly the bound (within); epoch 4 is over it, consumed and reported. The
    # trainer also reports epoch 1 and the last epoch within, where a server may stop it sooner.
    assert [report.epoch for report in server.reports] == [1, 3, 4] * (2 * MAX_TRIES_PER_RECURRENCE)
    assert {run.energy for run in result.runs} == {400.0}
    assert not any(run.reached_target or run.server_converged for run in result.runs)


def test_a_recurrence_out_of_tries_is_bricked_and_the_job_goes_on(toy_trace: WorkloadTrace) -> None:
    result = _toy_run(toy_trace, ScriptedServer(bound=3 * EPOCH_COST), Knobs(policy=LSTS), recurrences=2)

    assert [(rec.number, rec.converged, rec.tries) for rec in result.recurrences] == [(1, False, 20), (2, False, 20)]
    assert result.summary["bricked_recurrences"] == 2


@pytest.mark.parametrize(
    "bound, reached", [(10 * EPOCH_COST, True), (10 * EPOCH_COST - 1, False), (None, True)]
)
def test_the_target_epoch_converges_only_within_the_bound(toy_trace: WorkloadTrace, bound: float | None, reached: bool) -> None:
    server = ScriptedServer(bound)

    result = _toy_run(toy_trace, server, Knobs(policy=LSTS))

    first = result.runs[0]
    assert (first.epochs, first.reached_target, first.server_converged) == (10.0, reached, reached)
    epochs = [report.epoch for report in server.reports]
    assert epochs[: epochs.index(10) + 1] == ([1, 10] if reached else [1, 9, 10])


def test_a_guarded_zeus_job_asks_the_server_for_its_bound(toy_trace: WorkloadTrace) -> None:
    plain = ScriptedServer(bound=3 * EPOCH_COST)
    guarded = ScriptedServer(bound=3 * EPOCH_COST)

    _toy_run(toy_trace, plain, Knobs())
    _toy_run(toy_trace, guarded, Knobs(stop_window=20))

    # Plain Zeus's trainer has no cheapest recurrence yet, so no bound: it trains to the target.
    assert [report.epoch for report in plain.reports] == [10]
    assert [report.epoch for report in guarded.reports[:3]] == [1, 3, 4]


def test_the_trainer_reports_epoch_1_and_obeys_a_stop(toy_trace: WorkloadTrace) -> None:
    stopping = ScriptedServer(bound=None, stops_at_epoch_1=True)
    going_on = ScriptedServer(bound=None)

    stopped = _toy_run(toy_trace, stopping, Knobs(policy=LSTS, predictive_stop=True))
    finished = _toy_run(toy_trace, going_on, Knobs(policy=LSTS, predictive_stop=True))

    assert [report.epoch for report in stopping.reports] == [1] * MAX_TRIES_PER_RECURRENCE
    assert {(run.epochs, run.energy, run.time) for run in stopped.runs} == {(1.0, 100.0, 1.0)}
    assert [report.epoch for report in going_on.reports] == [1, 10]
    assert finished.recurrences[0].converged


def test_grow_multiplies_every_epochs_energy_and_time(toy_trace: WorkloadTrace) -> None:
    result = _toy_run(toy_trace, ScriptedServer(bound=None), Knobs(policy=LSTS), recurrences=3, drift=GROW)

    assert [run.energy for run in result.runs] == pytest.approx([1000.0, 1005.0, 1000.0 * 1.005**2])
    assert [run.time for run in result.runs] == pytest.approx([10.0, 10.05, 10.0 * 1.005**2])


def test_the_guards_are_sent_only_when_set(toy_trace: WorkloadTrace) -> None:
    default = TraceSimulator(toy_trace, ScriptedServer(None), Knobs(policy=LSTS), 1, "v100").job_spec()
    guarded = TraceSimulator(
        toy_trace, ScriptedServer(None), Knobs(stop_window=0, bound_escalation=False, predictive_stop=True), 1, "v100"
    ).job_spec()

    assert not {"stop_window", "bound_escalation", "predictive_stop"} & default.keys()
    assert (guarded["stop_window"], guarded["bound_escalation"], guarded["predictive_stop"]) == (0, False, True)


def test_cli_simulates_drift_with_the_guards(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--drift", "grow", "--json", "--recurrences", "30", "--policy", "lsts",
                 "--stop-window", "5", "--no-bound-escalation", "--predictive-stop"])

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    spec, summary = document["spec"], document["summary"]
    assert (spec["stop_window"], spec["bound_escalation"], spec["predictive_stop"]) == (5, False, True)
    assert summary["drift"] == {"scenario": "grow", "g": None, "b_old": 48, "b_new": None}
    assert len(document["recurrences"]) == summary["recurrences"] == 30
    assert summary["regret_oracle_recurrences"] > 0


def test_cli_leaves_unset_guards_to_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--json", "--recurrences", "5", "--policy", "lsts"])

    spec = json.loads(capsys.readouterr().out)["spec"]
    assert code == 0
    assert not {"stop_window", "bound_escalation", "predictive_stop"} & spec.keys()


def test_cli_refuses_a_negative_stop_window(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--stop-window", "-1"])

    assert exit_info.value.code == 2
    assert "must be 0 or more" in capsys.readouterr().err
