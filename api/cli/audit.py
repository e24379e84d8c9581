"""Audit commands: ``bso jobs``, ``show``, ``events``, ``replay``, ``export``, ``import``.

Tables for people by default, ``--format csv`` or ``json`` for scripts. Every command reads the
event store named by ``--database-url`` (or BSO_DATABASE_URL) and never writes to
it, except ``import``.
"""

import argparse
import contextlib
import os
import sys
from typing import Any, Callable, Iterator, TextIO

from api.cli.shared import (
    add_database_flag,
    add_format_flag,
    add_progress_flag,
    add_wide_flag,
    cell,
    guarded,
    non_negative,
    opened_audit,
    positive,
    print_csv,
    print_json,
    print_table,
    progress_for,
)
from api.cli.terminal import clipped, duration, energy, instant, knob, wrapped
from application.archive import ArchiveError, export_lines, import_lines
from application.audit import JobAudit, parse_instant, state_view


def register(commands: argparse._SubParsersAction) -> None:
    jobs = _command(commands, "jobs", "list registered jobs (deleted ones too)", list_jobs)
    jobs.add_argument("--prefix", default="", help="only job ids starting with this")
    jobs.add_argument("--limit", type=positive, default=50, help="jobs per page (default 50)")
    jobs.add_argument("--after", type=non_negative, default=0, help="where the previous page ended (it says)")
    add_format_flag(jobs)
    add_wide_flag(jobs)

    show = _command(commands, "show", "a job's current state and its trials", show_job)
    show.add_argument("job_id", help="client job id (latest incarnation) or job UUID")
    show.add_argument(
        "--limit", type=positive,
        help=f"show the last N trials (default {SHOWN_TRIALS} in the table, all as CSV or JSON)",
    )
    add_format_flag(show)
    add_wide_flag(show)

    events = _command(commands, "events", "a job's events in order", list_events)
    events.add_argument("job_id", help="client job id (latest incarnation) or job UUID")
    events.add_argument("--after", type=non_negative, default=0, help="start after this version")
    events.add_argument("--limit", type=positive, default=100, help="at most this many events (default 100)")
    add_format_flag(events)
    add_wide_flag(events)

    replay = _command(commands, "replay", "rebuild a job from its events, now or in the past", replay_job)
    replay.add_argument("job_id", help="client job id (latest incarnation) or job UUID")
    moment = replay.add_mutually_exclusive_group()
    moment.add_argument("--version", type=positive, help="state right after this event version")
    moment.add_argument("--at", type=parse_instant, help="state at this ISO-8601 instant (UTC if no zone)")
    add_format_flag(replay)
    add_progress_flag(replay)
    add_wide_flag(replay)

    export = _command(commands, "export", "a job's events as JSON Lines (for bso import)", export_job)
    export.add_argument("job_id", help="client job id (latest incarnation) or job UUID")
    export.add_argument("--output", "-o", help="file to write (default standard output)")

    load = _command(commands, "import", "load a job exported by bso export into this database", import_job)
    load.add_argument("file", help="JSON Lines file from bso export ('-' for standard input)")
    load.add_argument("--json", action="store_true", help="print JSON instead of a sentence")


def _command(
    commands: argparse._SubParsersAction,
    name: str,
    help_text: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    add_database_flag(parser)
    parser.set_defaults(handler=lambda args: guarded(handler, args))
    return parser


def print_state(state: dict[str, Any], wide: bool = False, summary: dict[str, Any] | None = None) -> None:
    """The job's ids, then the answers of its ``summary`` when given (the current state has one;
    a past state does not), then the rest of its state and its arms."""
    spec = state["spec"]
    _print_facts([("job", state["job_id"] + ("  DELETED" if state["deleted"] else "")), ("uuid", state["job_uuid"])], wide)
    if summary is not None:
        print_answers(summary, wide)
        print()
    _print_facts(
        [
            ("version", state["version"]),
            ("registered", instant(state["registered_at"])),
            ("policy", f"{state['policy']} (version {state['policy_version']})"),
            ("stage", state["stage"]),
            ("metric", f"target {cell(spec['target_metric'])}, "
                       f"{'higher' if spec['higher_is_better_metric'] else 'lower'} is better, max {spec['max_epochs']} epochs"),
            ("batch sizes", f"{', '.join(map(str, spec['batch_sizes']))} (default {spec['default_batch_size']})"),
            ("min cost", f"{energy(state['min_cost'])} at batch size {cell(state['min_cost_batch_size'])}"),
            ("pruning", pruning_summary(state["pruning"], state["policy"])),
            *([("local search", walk_summary(state["lsts"]))] if state["lsts"] is not None else []),
            ("trials", ", ".join(f"{key} {value}" for key, value in state["trials"].items())),
            ("seed", state["seed"]),
            ("knobs", ", ".join(f"{key} {knob(spec[key])}" for key in SHOWN_KNOBS[state["policy"]])),
            ("stop rule", ", ".join(f"{key} {_switch(spec[key])}" for key in GUARDS)),
            ("early stop", early_stop_summary(state["early_stop"])),
        ],
        wide,
    )
    if state["early_stop"]["warning"]:
        print(wrapped(f"warning: {state['early_stop']['warning']}", wide))
    if state["arms"]:
        print()
        arms = [{**arm, "precision": "inf" if arm["precision_infinite"] else arm["precision"]} for arm in state["arms"]]
        print_table(arms, ARM_COLUMNS, {"mean": energy}, wide, whole=["batch_size"])


def _print_facts(facts: list[tuple[str, Any]], wide: bool) -> None:
    """``label: value`` lines, labels aligned, a long value wrapped under itself; an id too long
    for the line gets a line of its own (wrapping could break it)."""
    for label, value in facts:
        line = f"{label:>{LABEL_WIDTH}}: {value}"
        if label in ("job", "uuid") and clipped(line, wide) != line:  # an id is never cut
            print(f"{label:>{LABEL_WIDTH}}:\n{value}")
        else:
            print(wrapped(line, wide, indent=LABEL_WIDTH + 2))


def print_answers(summary: dict[str, Any], wide: bool = False) -> None:
    """What a user asks first: the batch size to use now, whether the job settled on it, and
    what it saved against running every recurrence at the default batch size."""
    recommendation = summary["recommendation"]
    basis = (
        f"mean cost {energy(recommendation['mean_cost'])} over {recommendation['observations']} runs"
        if recommendation["mean_cost"] is not None
        else "nothing measured yet"
    )
    savings = summary["savings"]
    _print_facts(
        [
            ("use now", f"batch size {summary['recommended_batch_size']}"),
            ("because", f"{recommendation['rule']}: {basis}"),
            ("settled", _settled(summary)),
            ("savings", _savings_headline(summary)),
        ],
        wide,
    )
    if savings["default_estimate_missing"] is None:
        print_table(_savings_rows(savings), SAVINGS_COLUMNS, wide=wide)
    if savings["exploration_cost_missing"] is not None:
        print(wrapped(f"exploration cost unknown: {savings['exploration_cost_missing']}", wide))


def _settled(summary: dict[str, Any]) -> str:
    if summary["settled"]:
        return f"yes, on batch size {summary['recommended_batch_size']} since trial {summary['settled_since_trial']}"
    return f"not yet (once in the bandit stage with the last {summary['settled_after_trials']} trials at the recommended size)"


def _savings_headline(summary: dict[str, Any]) -> str:
    savings = summary["savings"]
    if savings["default_estimate_missing"] is not None:
        actual = ", ".join(f"{name} {UNITS[name](savings[name]['actual'])}" for name in MEASURES)
        return f"unknown: {savings['default_estimate_missing']} (spent so far: {actual})"
    fraction = savings["cost"]["fraction"]
    share = "-" if fraction is None else f"{fraction:.1%} of the cost"
    return (f"{share}, against the default batch size {summary['default_batch_size']} "
            f"for each of {savings['converged_recurrences']} converged recurrences")


def _savings_rows(savings: dict[str, Any]) -> list[dict[str, str]]:
    """Energy, time and cost, one row each, in their own units."""
    rows = []
    for name in MEASURES:
        measure, unit = savings[name], UNITS[name]
        fraction = measure["fraction"]
        rows.append(
            {
                "": name,
                "actual": unit(measure["actual"]),
                "default_estimate": unit(measure["default_estimate"]),
                "saved": unit(measure["saved"]),
                "fraction": "-" if fraction is None else f"{fraction:.1%}",
                "exploration_cost": unit(measure["exploration_cost"]),
            }
        )
    return rows


def early_stop_summary(early_stop: dict[str, Any]) -> str:
    """The bound a trial dispatched now would get and how it comes about."""
    if early_stop["factor"] is None:
        return f"off ({early_stop['factor_name']} is off)"
    if early_stop["reference"] is None:
        return f"no bound yet: no {early_stop['reference_name']} to bound against"
    escalation = "" if early_stop["escalation"] == 1 else f" x escalation {early_stop['escalation']:g}"
    return (
        f"bound {energy(early_stop['bound'])} = {early_stop['factor_name']} {early_stop['factor']} x "
        f"{early_stop['reference_name']} {energy(early_stop['reference'])}{escalation}, "
        f"judged {early_stop['judged'].replace('_', ' ')}; stopped in a row: {early_stop['stopped_in_a_row']}"
    )


def _switch(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else knob(value)


SHOWN_TRIALS = 20
LABEL_WIDTH = 12
MEASURES = ("energy", "time", "cost")
UNITS = {"energy": energy, "time": duration, "cost": energy}
SAVINGS_COLUMNS = ["", "actual", "default_estimate", "saved", "fraction", "exploration_cost"]
# The knobs each policy decides by (the spec has them all); the stop rule's guards apart.
SHOWN_KNOBS = {
    "zeus": ("eta_knob", "beta_knob", "window_size"),
    "lsts": ("eta_knob", "tau", "beta_explore", "beta_bandit", "keep_tol"),
}
GUARDS = ("stop_window", "bound_escalation", "predictive_stop")
TRIAL_FORMATS = {"time": duration, "energy": energy, "cost": energy}
ARM_COLUMNS = ["batch_size", "mean", "precision", "precision_infinite", "num_observations"]
JOB_COLUMNS = ["job_id", "job_uuid", "stage", "trials", "min_cost", "min_cost_batch_size", "registered_at", "deleted"]
TRIAL_LIST_COLUMNS = [
    "number", "batch_size", "kind", "status", "epochs_reported", "time", "energy", "cost", "converged",
    "stop_reason", "dispatched_at",
]
EVENT_COLUMNS = ["version", "timestamp", "type", "payload"]


def pruning_summary(pruning: dict[str, Any] | None, policy: str) -> str:
    """Round 1 of 2 while in round 1; done (2 rounds) once every round is over; only Zeus's
    policy prunes."""
    if pruning is None:
        return f"none: the {policy} policy does not prune"
    if pruning["done"]:
        return f"done ({pruning['num_rounds']} rounds), survivors {pruning['survivors']}"
    return f"round {pruning['round']} of {pruning['num_rounds']}, survivors {pruning['survivors']}"


def walk_summary(lsts: dict[str, Any]) -> str:
    """LSTS's walk from the default batch size: what it explored, and its next step or arms."""
    explored = ", ".join(map(str, lsts["explored"])) or "nothing yet"
    if lsts["phase"] == "bandit":
        return f"done, explored {explored}; arms {', '.join(map(str, lsts['arms']))}"
    step, label = (lsts["in_flight"], "running") if lsts["in_flight"] is not None else (lsts["next_step"], "next")
    following = "" if step is None else f"; {label} {step['batch_size']} ({step['direction']})"
    return f"exploring, explored {explored}{following}"


# -- handlers --------------------------------------------------------------------------


def list_jobs(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit:
        page = audit.list_jobs(args.prefix, args.after, args.limit)
    if args.format == "json":
        print_json(page)
        return 0
    if args.format == "csv":
        print_csv([{**row, "trials": row["trials"]["total"]} for row in page["jobs"]], JOB_COLUMNS)
        return 0
    rows = [
        {**row, "trials": row["trials"]["total"], "best_bs": row["min_cost_batch_size"],
         "registered": row["registered_at"], "deleted": "yes" if row["deleted"] else ""}
        for row in page["jobs"]
    ]
    columns = ["job_id", "stage", "trials", "min_cost", "best_bs", "registered", "deleted"]
    if args.wide:
        columns.append("job_uuid")
    print_table(
        rows, columns, {"min_cost": energy, "registered": instant}, args.wide,
        whole=["job_id", "job_uuid"], droppable=["registered", "best_bs", "min_cost", "trials"],
    )
    if page["next_after"] is not None:
        print(f"(more: bso jobs --after {page['next_after']})")
    return 0


def show_job(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit:
        state = audit.state(args.job_id)
        summary = audit.summary(args.job_id)
        trials = audit.trials(args.job_id)
    limit = args.limit if args.limit is not None or args.format != "table" else SHOWN_TRIALS
    shown = trials[-limit:] if limit else trials
    if args.format == "json":
        print_json({**state, "summary": summary, "trial_list": shown})
        return 0
    if args.format == "csv":  # the trials: the state is one record, not rows
        print_csv(shown, TRIAL_LIST_COLUMNS)
        return 0
    print_state(state, args.wide, summary)
    print()
    rows = [{**trial, "epochs": trial["epochs_reported"], "dispatched": trial["dispatched_at"]} for trial in shown]
    columns = ["number", "batch_size", "kind", "status", "epochs", "time", "energy", "cost", "converged", "stop_reason"]
    print_table(
        rows, columns + (["dispatched"] if args.wide else []), {**TRIAL_FORMATS, "dispatched": instant}, args.wide,
        whole=["number"], droppable=["epochs", "converged", "time", "kind"],
    )
    if len(shown) < len(trials):
        print(f"(the last {len(shown)} of {len(trials)} trials: --limit {len(trials)} for all)")
    return 0


def list_events(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit:
        events, more = _events(audit, args.job_id, args.after, args.limit)
    if args.format == "json":
        print_json(events)
    elif args.format == "csv":
        print_csv(events, EVENT_COLUMNS)
    else:
        rows = [{**event, "type": event["type"].removeprefix("bso.")} for event in events]
        print_table(rows, EVENT_COLUMNS, {"timestamp": instant}, args.wide, whole=["version"])
    if more:
        hint = f"(more: bso events {args.job_id} --after {events[-1]['version']})"
        print(hint, file=sys.stdout if args.format == "table" else sys.stderr)
    return 0


def _events(audit: JobAudit, reference: str, after: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` events after version ``after``, and whether more follow."""
    events: list[dict[str, Any]] = []
    while len(events) < limit:
        page = audit.events(reference, after, min(1000, limit - len(events)))
        events.extend(page["events"])
        if page["next_after"] is None:
            return events, False
        after = page["next_after"]
    return events, audit.events(reference, after, 1)["events"] != []


def replay_job(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit:
        job = audit.replay(args.job_id, args.version, args.at, progress_for(args, "replay"))
    state = state_view(job)
    if args.format == "json":
        print_json(state)
    elif args.format == "csv":  # the arms: the rest of the state is one record, not rows
        print_csv(state["arms"], ARM_COLUMNS)
    else:
        print_state(state, args.wide)
    return 0


def export_job(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit, _output(args.output) as stream:
        for line in export_lines(audit, args.job_id):
            stream.write(line + "\n")
    return 0


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    """Standard output, or ``path`` written whole or not at all.

    The lines go to a temporary file beside ``path``, renamed over it once every line is
    written: an export that fails (an unknown job, a store that breaks) leaves no empty or
    partial file that a later ``bso import`` would take for a job.
    """
    if path is None:
        yield sys.stdout
        return
    temporary = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as stream:
            yield stream
        os.replace(temporary, path)
    except OSError as error:
        raise ArchiveError(f"Cannot write {path}: {error.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def import_job(args: argparse.Namespace) -> int:
    with _input(args.file) as stream, opened_audit(args, create=True) as audit:
        imported = import_lines(audit.app, stream)
    if args.json:
        print_json(imported)
        return 0
    print(f"imported job {imported['job_id']} ({imported['job_uuid']}): {imported['events']} events")
    if not imported["job_id_claimed"]:
        print(f"job id {imported['job_id']} belongs to a live job here: address the import by its UUID")
    return 0


@contextlib.contextmanager
def _input(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdin
        return
    try:
        stream = open(path, encoding="utf-8")
    except OSError as error:
        raise ArchiveError(f"Cannot read {path}: {error.strerror}") from None
    with stream:
        yield stream
