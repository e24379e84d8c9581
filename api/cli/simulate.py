"""``bso simulate``: replay a recurring job of the Zeus traces through the optimizer."""

import argparse
import re
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Iterator

from api.cli.shared import print_json
from application.simulator import (
    MAX_TRIES_PER_RECURRENCE,
    InProcessClient,
    Knobs,
    OptimizerClient,
    PAIRED_DRAWS,
    ZEUS_DRAWS,
    SimulationError,
    SimulationResult,
    TraceSimulator,
    WorkloadTrace,
)
from api.cli.shared import add_progress_flag, add_wide_flag, print_table, progress_for
from api.cli.terminal import duration, energy, knob, wrapped
from api.version import DISTRIBUTION
from application.drift import NONE, SCENARIOS
from application.traces import Workload
from domain.errors import DomainError
from domain.spec import JOB_ID_PATTERN, MAX_JOB_ID_LENGTH, MAX_PREFIX_LENGTH, POLICIES, ZEUS
from infrastructure.optimizer_http import HttpOptimizerClient, RemoteOptimizerError
from infrastructure.settings import persistence_env
from infrastructure.trace_data import (
    SHIPPED_GPUS,
    WORKLOAD_PRESETS,
    TraceError,
    Traces,
    shipped_power_trace,
    shipped_train_trace,
)

PLOT_EXTRA_HINT = f"python -m pip install '{DISTRIBUTION}[plot]' (or, in a clone, python -m pip install -e '.[plot]')"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "simulate",
        help="replay a recurring training job from the Zeus traces through the optimizer",
        description="Trace-driven simulation: a simulated trainer asks the optimizer for a batch "
        "size, trains by sampling a recorded run from the Zeus NSDI '23 traces, and reports.",
    )
    workload = parser.add_argument_group("workload (a preset, each field overridable)")
    workload.add_argument("--workload", choices=sorted(WORKLOAD_PRESETS), help="preset (default librispeech)")
    workload.add_argument("--dataset")
    workload.add_argument("--network")
    workload.add_argument("--optimizer")
    workload.add_argument("--target-metric", type=float)
    workload.add_argument("--max-epochs", type=int)
    workload.add_argument("--default-batch-size", type=int)
    traces = parser.add_argument_group("traces")
    traces.add_argument("--gpu", default="v100", help=f"shipped power trace: {', '.join(SHIPPED_GPUS)} (default v100)")
    traces.add_argument("--train-trace", type=Path, help="train trace CSV (default: the shipped one)")
    traces.add_argument("--power-trace", type=Path, help="power trace CSV (default: the shipped one of --gpu)")
    knobs = parser.add_argument_group("optimizer knobs")
    knobs.add_argument("--eta-knob", type=float, default=0.5)
    knobs.add_argument("--beta-knob", type=_beta, default=2.0, help="early-stop factor, or 'none' (default 2.0)")
    knobs.add_argument("--mab-seed", type=int, default=1, help="the job's bandit seed (default 1)")
    knobs.add_argument("--window-size", type=int, default=0)
    knobs.add_argument("--policy", choices=POLICIES, default=ZEUS, help="the job's policy (default zeus)")
    guards = parser.add_argument_group("stop rule guards (not given: the server's default for the policy)")
    guards.add_argument(
        "--stop-window",
        type=_count,
        metavar="N",
        help="the early-stop reference is the cheapest of the last N converged runs (0: of all runs; "
        "server default: 0 for zeus, 20 for lsts)",
    )
    guards.add_argument(
        "--bound-escalation",
        action=argparse.BooleanOptionalAction,
        help="double a run's cost bound after each run stopped by it in a row (server default: off for "
        "zeus, on for lsts)",
    )
    guards.add_argument(
        "--predictive-stop",
        action="store_const",
        const=True,
        help="LSTS: the trainer reports epoch 1 and stops there when the server predicts the run ends "
        "above its bound (server default: off)",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=1, help="the simulator's own sampling seed (default 1)")
    run.add_argument(
        "--draws",
        choices=(ZEUS_DRAWS, PAIRED_DRAWS),
        default=ZEUS_DRAWS,
        help="zeus: one generator for all draws, as Zeus's simulator (default); paired: the k-th run of "
        "a batch size depends only on --seed, so two policies run with the same seed see the same runs",
    )
    run.add_argument("--recurrences", type=int, help="default: 2 x batch sizes x power limits")
    run.add_argument(
        "--drift",
        choices=SCENARIOS,
        default=NONE,
        help="perturb the recorded runs as DRIFT.md's scenario says: grow (D1), step-silent (D2), "
        "step-visible (D3), slow (D4); regret is then measured against each recurrence's oracle "
        "(default none)",
    )
    run.add_argument(
        "--job-id",
        type=_job_id,
        metavar="NAME",
        help="the simulated job's id, its prefix the part before its last '-' (or all of it) "
        "(default: simulate-xxxxxxxx, generated)",
    )
    run.add_argument("--url", help="drive a running server over HTTP instead of the in-process application")
    run.add_argument("--database-url", default="memory://", help="event store of the in-process application (default memory://)")
    run.add_argument("--json", action="store_true", help="print everything as one JSON document")
    run.add_argument("--plot", type=Path, metavar="FILE", help="write a PNG of cost and batch size per recurrence")
    add_progress_flag(run)
    add_wide_flag(run)
    parser.set_defaults(handler=simulate)


def _beta(text: str) -> float | None:
    if text.lower() == "none":
        return None
    return float(text)


def job_id_prefix(job_id: str) -> str:
    """The prefix a chosen job id registers with (a job id must start with its prefix): the
    part before its last '-', as in a generated ``prefix-xxxxxxxx``, or the whole id."""
    return job_id.rpartition("-")[0] or job_id


def _job_id(text: str) -> str:
    """A job id the service accepts, checked before the traces are read."""
    if len(text) > MAX_JOB_ID_LENGTH or re.fullmatch(JOB_ID_PATTERN, text) is None:
        raise argparse.ArgumentTypeError(
            f"must be 1 to {MAX_JOB_ID_LENGTH} letters, digits or any of _.:@+=- (got {text!r})"
        )
    if len(job_id_prefix(text)) > MAX_PREFIX_LENGTH:
        raise argparse.ArgumentTypeError(
            f"its prefix (the part before its last '-', or the whole id) may have at most {MAX_PREFIX_LENGTH} "
            f"characters (got {text!r})"
        )
    return text


class NamedSimulator(TraceSimulator):
    """The simulator, registering its job under a chosen id (``--job-id``) when given one."""

    def __init__(self, job_id: str | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.job_id = job_id

    def job_spec(self) -> dict[str, Any]:
        spec = super().job_spec()
        if self.job_id is None:
            return spec
        return {**spec, "job_id": self.job_id, "job_id_prefix": job_id_prefix(self.job_id)}


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def simulate(args: argparse.Namespace) -> int:
    if args.plot is not None and not _matplotlib_importable():
        print(f"bso simulate: --plot needs matplotlib: {PLOT_EXTRA_HINT}", file=sys.stderr)
        return 2
    try:
        result = _run(args)
    except (SimulationError, TraceError, RemoteOptimizerError, DomainError) as error:
        print(f"bso simulate: {error}", file=sys.stderr)
        return 1
    if args.json:
        print_json(result.as_dict())
    else:
        print_report(result, args.wide)
    if args.plot is not None:
        return write_plot(result, args.plot)
    return 0


def _matplotlib_importable() -> bool:
    """Checked before the simulation, so that a missing extra costs nothing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _run(args: argparse.Namespace) -> SimulationResult:
    train_path = args.train_trace or shipped_train_trace()
    power_path = args.power_trace or shipped_power_trace(args.gpu)
    traces = Traces.load(train_path, power_path)
    trace = WorkloadTrace(traces, workload_from(args, traces))
    recurrences = args.recurrences or 2 * len(trace.batch_sizes) * len(trace.power_limits)
    knobs = Knobs(
        eta_knob=args.eta_knob,
        beta_knob=args.beta_knob,
        mab_seed=args.mab_seed,
        window_size=args.window_size,
        policy=args.policy,
        stop_window=args.stop_window,
        bound_escalation=args.bound_escalation,
        predictive_stop=args.predictive_stop,
    )
    client, close = _client(args)
    try:
        simulator = NamedSimulator(
            args.job_id, trace, client, knobs, seed=args.seed, gpu_model=args.gpu, draws=args.draws,
            drift_scenario=args.drift,
        )
        return simulator.run(recurrences, progress=progress_for(args, "simulate", unit="recurrence"))
    finally:
        close()


def workload_from(args: argparse.Namespace, traces: Traces) -> Workload:
    """The preset named by --workload (or --dataset), with every given field overriding it."""
    name = args.workload or args.dataset or "librispeech"
    overrides = {
        "dataset": args.dataset,
        "network": args.network,
        "optimizer": args.optimizer,
        "target_metric": args.target_metric,
        "max_epochs": args.max_epochs,
        "default_batch_size": args.default_batch_size,
    }
    given = {key: value for key, value in overrides.items() if value is not None}
    if name in WORKLOAD_PRESETS:
        workload = replace(WORKLOAD_PRESETS[name], **given)
    else:
        missing = [f"--{key.replace('_', '-')}" for key, value in overrides.items() if value is None]
        if missing:
            raise TraceError(f"No preset for dataset {name!r}: also give {', '.join(missing)}")
        workload = Workload(**given)
    if args.default_batch_size is None:
        # Like Zeus's experiments: a GPU with less memory caps the preset default.
        largest = traces.batch_sizes(workload)[-1]
        workload = replace(workload, default_batch_size=min(workload.default_batch_size, largest))
    if workload.default_batch_size not in traces.batch_sizes(workload):
        raise TraceError(
            f"Default batch size {workload.default_batch_size} is not among the traced batch sizes "
            f"{traces.batch_sizes(workload)}"
        )
    return workload


def _client(args: argparse.Namespace) -> tuple[OptimizerClient, Any]:
    if args.url:
        remote = HttpOptimizerClient.connect(args.url)
        return remote, remote.close
    from application.service import BatchSizeOptimizer

    optimizer = BatchSizeOptimizer(env=persistence_env(args.database_url))
    return InProcessClient(optimizer), optimizer.close


def print_report(result: SimulationResult, wide: bool = False) -> None:
    spec = result.spec
    print(wrapped(f"job {result.job_id} ({spec['policy']} policy): batch sizes {spec['batch_sizes']}, default "
                  f"{spec['default_batch_size']}, eta {spec['eta_knob']}, beta {knob(spec['beta_knob'])}, "
                  f"max_power {spec['max_power']} W", wide))
    rows = [{**asdict(rec), "rec": rec.number, "bs": rec.batch_size, "pl": f"{rec.power_limit} W"} for rec in result.recurrences]
    columns = ["rec", "bs", "pl", "epochs", "energy", "time", "cost", "tries", "converged"]
    print_table(rows, columns, {"energy": energy, "time": duration, "cost": energy}, wide)
    summary = result.summary
    for line in _summary_lines(summary):
        print(wrapped(line, wide))


def _summary_lines(summary: dict[str, Any]) -> Iterator[str]:
    yield (f"runs: {summary['runs']} over {summary['recurrences']} recurrences; "
           f"final batch size {summary['final_batch_size']}, settled after recurrence "
           f"{summary['settled_after_recurrence']}")
    yield (f"cumulative cost {energy(summary['cumulative_cost'])}, energy {energy(summary['cumulative_energy'])}, "
           f"time {duration(summary['cumulative_time'])}")
    drift = summary["drift"]
    # The oracle and the baseline below price the recorded runs as they are: without drift.
    undrifted = "" if drift["scenario"] == NONE else " (runs without drift)"
    if drift["scenario"] != NONE:
        tilt = "" if drift["g"] is None else f", g {drift['g']}, optimum moves to batch size {drift['b_new']}"
        yield f"drift {drift['scenario']} (DRIFT.md): optimum without drift batch size {drift['b_old']}{tilt}"
    oracle = summary["oracle"]
    if oracle is not None:
        yield (f"oracle{undrifted}: batch size {oracle['batch_size']} at {oracle['power_limit']} W, regret "
               f"{energy(summary['regret'])} ({summary['regret'] / summary['cumulative_cost']:.1%} of the cost)")
    yield f"regret in oracle recurrences (POLICY.md, oracle of each recurrence): {summary['regret_oracle_recurrences']:.3f}"
    if summary["bricked_recurrences"]:
        yield f"bricked recurrences (no run reached the target in {MAX_TRIES_PER_RECURRENCE} tries): {summary['bricked_recurrences']}"
    baseline = summary["baseline"]
    yield (f"against batch size {baseline['batch_size']} at {baseline['power_limit']} W every time{undrifted}: "
           f"energy saved {summary['energy_saved_fraction']:.1%}, time saved {summary['time_saved_fraction']:.1%}, "
           f"cost saved {summary['cost_saved_fraction']:.1%}")


def write_plot(result: SimulationResult, path: Path) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numbers = [rec.number for rec in result.recurrences]
    figure, (cost_axis, size_axis) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    cost_axis.plot(numbers, [rec.cost for rec in result.recurrences], marker=".", linewidth=0.8)
    cost_axis.set_ylabel("cost per recurrence")
    cost_axis.set_yscale("log")
    size_axis.step(numbers, [rec.batch_size for rec in result.recurrences], where="mid")
    size_axis.set_ylabel("chosen batch size")
    size_axis.set_xlabel("recurrence")
    workload = result.workload
    figure.suptitle(f"{workload['dataset']}/{workload['network']} on {result.spec['gpu_model']}")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=120)
    plt.close(figure)
    print(f"plot written to {path}", file=sys.stderr)
    return 0
