"""``bso trials``: a job's trials, one row each, as a table, CSV or JSON.

The columns are those of ``GET /v1/jobs/{id}/trials.csv`` and of the Python
client's DataFrame (``api.trial_table``), so a notebook, a spreadsheet and a
terminal see the same table.
"""

import argparse
import sys

from api.cli.shared import add_database_flag, guarded, opened_audit, positive, print_json, print_table
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
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format (default table)")
    moment = parser.add_mutually_exclusive_group()
    moment.add_argument("--version", type=positive, help="trials as they were right after this event version")
    moment.add_argument("--at", type=parse_instant, help="trials as they were at this ISO-8601 instant (UTC if no zone)")
    add_database_flag(parser)
    parser.set_defaults(handler=lambda args: guarded(list_trials, args))


def list_trials(args: argparse.Namespace) -> int:
    with opened_audit(args) as audit:
        rows = trial_rows(audit.trials(args.job_id, args.version, args.at, why=True))
    if args.format == "csv":
        sys.stdout.write(trials_csv(rows))
    elif args.format == "json":
        print_json(rows)
    else:
        print_table(rows, COLUMN_NAMES)
    return 0
