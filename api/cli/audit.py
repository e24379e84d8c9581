"""Audit commands: ``bso jobs``, ``show``, ``events``, ``replay``, ``export``, ``import``.

Tables for people by default, ``--json`` for scripts. Every command reads the
event store named by ``--database-url`` (or BSO_DATABASE_URL) and never writes to
it, except ``import``.
"""

import argparse
import contextlib
import sys
from typing import Any, Callable, Iterator, TextIO

from api.cli.shared import (
    add_database_flag,
    add_progress_flag,
    cell,
    guarded,
    non_negative,
    opened_audit,
    positive,
    print_json,
    print_table,
    progress_for,
)
from application.archive import ArchiveError, export_lines, import_lines
from application.audit import JobAudit, parse_instant, state_view


def register(commands: argparse._SubParsersAction) -> None:
    jobs = _command(commands, "jobs", "list registered jobs (deleted ones too)", list_jobs)
    jobs.add_argument("--prefix", default="", help="only job ids starting with this")
    jobs.add_argument("--limit", type=positive, default=50, help="jobs per page (default 50)")
    jobs.add_argument("--after", type=non_negative, default=0, help="cursor from a previous page")

    show = _command(commands, "show", "a job's current state and its trials", show_job)
    show.add_argument("job_id", help="client job id (latest incarnation) or job UUID")

    events = _command(commands, "events", "a job's events in order", list_events)
    events.add_argument("job_id", help="client job id (latest incarnation) or job UUID")
    events.add_argument("--after", type=non_negative, default=0, help="start after this version")
    events.add_argument("--limit", type=positive, help="at most this many events (default all)")

    replay = _command(commands, "replay", "rebuild a job from its events, now or in the past", replay_job)
    replay.add_argument("job_id", help="client job id (latest incarnation) or job UUID")
    moment = replay.add_mutually_exclusive_group()
    moment.add_argument("--version", type=positive, help="state right after this event version")
    moment.add_argument("--at", type=parse_instant, help="state at this ISO-8601 instant (UTC if no zone)")
    add_progress_flag(replay)

    export = _command(commands, "export", "a job's events as JSON Lines (for bso import)", export_job, json_flag=False)
    export.add_argument("job_id", help="client job id (latest incarnation) or job UUID")
    export.add_argument("--output", "-o", help="file to write (default standard output)")

    load = _command(commands, "import", "load a job exported by bso export into this database", import_job)
    load.add_argument("file", help="JSON Lines file from bso export ('-' for standard input)")


def _command(
    commands: argparse._SubParsersAction,
    name: str,
    help_text: str,
    handler: Callable[[argparse.Namespace], int],
    json_flag: bool = True,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_database_flag(parser)
    parser.set_defaults(handler=lambda args: guarded(handler, args))
    return parser


def print_state(state: dict[str, Any]) -> None:
    pruning = state["pruning"]
    facts = [
        ("job", f"{state['job_id']} ({state['job_uuid']})" + ("  DELETED" if state["deleted"] else "")),
        ("version", state["version"]),
        ("registered", state["registered_at"]),
        ("stage", state["stage"]),
        ("min cost", f"{cell(state['min_cost'])} at batch size {cell(state['min_cost_batch_size'])}"),
        ("pruning", f"round {pruning['round']} of {pruning['num_rounds']}, survivors {pruning['survivors']}"),
        ("trials", ", ".join(f"{key} {value}" for key, value in state["trials"].items())),
        ("seed", state["seed"]),
        ("knobs", ", ".join(f"{key}={state['spec'][key]}" for key in ("eta_knob", "beta_knob", "window_size"))),
    ]
    for label, value in facts:
        print(f"{label:>10}: {value}")
    if state["arms"]:
        print()
        print_table(state["arms"], ["batch_size", "mean", "precision", "num_observations"])


# -- handlers --------------------------------------------------------------------------


def list_jobs(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit:
        page = audit.list_jobs(args.prefix, args.after, args.limit)
    if args.json:
        print_json(page)
        return 0
    rows = [{**row, "trials": row["trials"]["total"], "deleted": "yes" if row["deleted"] else ""} for row in page["jobs"]]
    print_table(rows, ["job_id", "stage", "trials", "min_cost", "min_cost_batch_size", "registered_at", "deleted", "job_uuid", "cursor"])
    if page["next_after"] is not None:
        print(f"(more: --after {page['next_after']})")
    return 0


def show_job(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit:
        state = audit.state(args.job_id)
        trials = audit.trials(args.job_id)
    if args.json:
        print_json({**state, "trial_list": trials})
        return 0
    print_state(state)
    print()
    print_table(trials, ["number", "batch_size", "kind", "status", "epochs_reported", "time", "energy", "cost", "converged", "stop_reason"])
    return 0


def list_events(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit:
        events = _events(audit, args.job_id, args.after, args.limit)
    if args.json:
        print_json(events)
        return 0
    print_table(events, ["version", "timestamp", "type", "payload"])
    return 0


def _events(audit: JobAudit, reference: str, after: int, limit: int | None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while limit is None or len(events) < limit:
        page = audit.events(reference, after, min(1000, limit - len(events)) if limit else 1000)
        events.extend(page["events"])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    return events


def replay_job(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit:
        job = audit.replay(args.job_id, args.version, args.at, progress_for(args, "replay"))
    state = state_view(job)
    if args.json:
        print_json(state)
    else:
        print_state(state)
    return 0


def export_job(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit, _output(args.output) as stream:
        for line in export_lines(audit, args.job_id):
            stream.write(line + "\n")
    return 0


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8") as stream:
        yield stream


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
