"""The ``bso`` command line: one module per subcommand, its shared flags and output in ``api.cli.shared``."""

import argparse
import sys
from typing import Sequence

from api.cli import audit, initdb, reanalyze, serve, simulate, trials
from infrastructure.schema import SchemaMissingError
from infrastructure.settings import SettingsError

# Add a subcommand by writing api/cli/NAME.py with register() and listing it here.
COMMAND_MODULES = [serve, initdb, simulate, audit, trials, reanalyze]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bso",
        description="Event-sourced batch size optimizer: a drop-in replacement for the Zeus BSO server.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (SettingsError, SchemaMissingError) as error:
        print(f"bso: {error}", file=sys.stderr)
        return 2

