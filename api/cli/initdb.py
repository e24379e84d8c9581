"""``bso init-db``: create the event store's tables (idempotent, safe to run concurrently)."""

import argparse
import sys

from api.cli.shared import add_database_flag, settings_from
from application.service import BatchSizeOptimizer
from infrastructure.schema import create_schema, redacted


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "init-db", help="create the event store's tables if they do not exist (safe to repeat)"
    )
    add_database_flag(parser)
    parser.set_defaults(handler=init_db)


def init_db(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    create_schema(BatchSizeOptimizer, settings)
    print(f"bso: event store ready at {redacted(settings.database_url)}", file=sys.stderr)
    return 0
