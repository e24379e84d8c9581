"""The ``bso`` command line: one module per subcommand, its shared flags and output in ``api.cli.shared``."""

import argparse
import os
import sys
from typing import NoReturn, Sequence

from api.cli import audit, initdb, reanalyze, rebuild, serve, simulate, token, trials
from api.version import DISTRIBUTION, package_version
from infrastructure.schema import STORE_FAILURES, SchemaMissingError, StoreUnavailableError, one_line
from infrastructure.settings import SettingsError

# Add a subcommand by writing api/cli/NAME.py with register() and listing it here.
COMMAND_MODULES = [serve, initdb, simulate, audit, trials, reanalyze, rebuild, token]


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors in one line on standard error, exit status 2 (as for every other refusal)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog="bso",
        description="Event-sourced batch size optimizer: a drop-in replacement for the Zeus BSO server.",
    )
    parser.add_argument("--version", action="version", version=f"bso ({DISTRIBUTION}) {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (SettingsError, SchemaMissingError, StoreUnavailableError) as error:
        print(f"bso: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _reader_went_away()
    except STORE_FAILURES as error:  # the store failed in the middle of a command
        print(f"bso: the event store failed: {one_line(error)}", file=sys.stderr)
        return 2


def _reader_went_away() -> int:
    """Standard output was closed early (``bso ... | head``): stop quietly, as a shell tool does."""
    # Point stdout at /dev/null so that the interpreter's final flush does not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for a pipeline cut short

