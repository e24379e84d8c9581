"""``bso trials``: a job's trials, one row each, as a table, CSV or JSON.

The columns are those of ``GET /v1/jobs/{id}/trials.csv`` and of the Python
client's DataFrame (``api.trial_table``), so a notebook, a spreadsheet and a
terminal see the same table.
"""

import argparse
import sys

from api.cli.shared import add_database_flag, add_format_flag, guarded, opened_audit, positive, print_json, print_table
from api.cli.terminal import duration, energy, instant
from api.trial_table import COLUMN_NAMES, trial_rows, trials_csv
from application.audit import parse_instant


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "trials",
        help="a job's trials, one row each (table, CSV or JSON)",
        description="Every trial of a job with its outcome and why it got its batch size, now or as "
        "it was at a past version or instant. The CSV has the columns of GET /v1/jobs/{id}/trials.csv.",
    )
    parser.add_argument("job_id", help="client job id (latest incarnation) or job UUID")
    add_format_flag(parser)
    moment = parser.add_mutually_exclusive_group()
    moment.add_argument("--version", type=positive, help="trials as they were right after this event version")
    moment.add_argument("--at", type=parse_instant, help="trials as they were at this ISO-8601 instant (UTC if no zone)")
    add_database_flag(parser)
    parser.set_defaults(handler=lambda args: guarded(list_trials, args))


TABLE_FORMATS = {"time": duration, "energy": energy, "cost": energy, "dispatched_at": instant, "finished_at": instant}
# The table's columns in the order they give way to a narrow terminal: the reason for a
# choice and the times first, the trial number never (the CSV and JSON keep every column).
DROPPED_FIRST = [
    "why_direction", "why_round", "why_phase", "finished_at", "dispatched_at", "epochs_reported",
    "metric", "why_stage", "time", "converged", "energy", "kind",
]


def list_trials(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit:
        rows = trial_rows(audit.trials(args.job_id, args.version, args.at, why=True))
    if args.format == "csv":
        sys.stdout.write(trials_csv(rows))
    elif args.format == "json":
        print_json(rows)
    else:
        print_table(rows, COLUMN_NAMES, TABLE_FORMATS, whole=["number"], droppable=DROPPED_FIRST)
    return 0
