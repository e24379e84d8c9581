"""Audit commands: ``bso jobs``, ``show``, ``events``, ``replay``, ``export``, ``import``.

Tables for people by default, ``--json`` for scripts. Every command reads the
event store named by ``--database-url`` (or BSO_DATABASE_URL) and never writes to
it, except ``import``.
"""

import argparse
import contextlib
import json
import sys
from typing import Any, Callable, Iterator, Sequence, TextIO

from api.commands.common import add_database_flag, settings_from
from application.archive import ArchiveError, export_lines, import_lines
from application.audit import AuditNotFoundError, JobAudit, parse_instant, state_view
from application.service import BatchSizeOptimizer
from infrastructure.schema import check_schema, create_schema


def register(commands: argparse._SubParsersAction) -> None:
    jobs = _command(commands, "jobs", "list registered jobs (deleted ones too)", list_jobs)
    jobs.add_argument("--prefix", default="", help="only job ids starting with this")
    jobs.add_argument("--limit", type=_positive, default=50, help="jobs per page (default 50)")
    jobs.add_argument("--after", type=_non_negative, default=0, help="cursor from a previous page")

    show = _command(commands, "show", "a job's current state and its trials", show_job)
    show.add_argument("job_id", help="client job id (latest incarnation) or job UUID")

    events = _command(commands, "events", "a job's events in order", list_events)
    events.add_argument("job_id", help="client job id (latest incarnation) or job UUID")
    events.add_argument("--after", type=_non_negative, default=0, help="start after this version")
    events.add_argument("--limit", type=_positive, help="at most this many events (default all)")

    replay = _command(commands, "replay", "rebuild a job from its events, now or in the past", replay_job)
    replay.add_argument("job_id", help="client job id (latest incarnation) or job UUID")
    moment = replay.add_mutually_exclusive_group()
    moment.add_argument("--version", type=_positive, help="state right after this event version")
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


def guarded(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except (AuditNotFoundError, ArchiveError) as error:
        print(f"bso {args.command}: {error}", file=sys.stderr)
        return 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on standard error (default: when it is a terminal)",
    )


@contextlib.contextmanager
def opened_audit(args: argparse.Namespace, create: bool = False) -> Iterator[JobAudit]:
    settings = settings_from(args)
    if create:
        create_schema(BatchSizeOptimizer, settings)
    else:
        check_schema(BatchSizeOptimizer, settings)
    app = BatchSizeOptimizer(env=settings.override(create_schema=False).persistence_env())
    try:
        yield JobAudit(app)
    finally:
        app.close()


class ProgressBar:
    """A one-line bar on standard error, redrawn at most every whole percent."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if percent == self._shown:
            return
        self._shown = percent
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        end = "\n" if done >= total else ""
        print(f"\r{self.label} [{bar}] {done}/{total} events {percent}%", end=end, file=self.stream, flush=True)


def progress_for(args: argparse.Namespace, label: str) -> ProgressBar | None:
    wanted = args.progress if args.progress is not None else sys.stderr.isatty()
    return ProgressBar(label) if wanted else None


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)]
    print("  ".join(column.ljust(width) for column, width in zip(columns, widths)).rstrip())
    for line in cells:
        print("  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def print_state(state: dict[str, Any]) -> None:
    pruning = state["pruning"]
    facts = [
        ("job", f"{state['job_id']} ({state['job_uuid']})" + ("  DELETED" if state["deleted"] else "")),
        ("version", state["version"]),
        ("registered", state["registered_at"]),
        ("stage", state["stage"]),
        ("min cost", f"{_cell(state['min_cost'])} at batch size {_cell(state['min_cost_batch_size'])}"),
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
