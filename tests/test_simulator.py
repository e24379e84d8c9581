"""The trace-driven simulator reproduces Zeus's reference run (SPEC section 4) exactly."""

import json

import pytest
from starlette.testclient import TestClient

from api.http.app import create_app
from api.cli import main
from application.service import BatchSizeOptimizer
from application.simulator import (
    InProcessClient,
    Knobs,
    TraceSimulator,
    WorkloadTrace,
    settled_after,
)
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
