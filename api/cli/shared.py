"""What several ``bso`` subcommands share: the store flag, opening the store, errors, output."""

import argparse
import contextlib
import sys
from typing import Any, Callable, Iterator, Mapping, Sequence

from tqdm import tqdm

from api.cli.terminal import cell, print_table  # noqa: F401  (subcommands print tables through here)
from api.csv_text import csv_text
from api.json_text import finite_json
from api.numbers import parse_number
from application.archive import ArchiveError
from application.audit import AuditNotFoundError, JobAudit
from application.service import BatchSizeOptimizer
from infrastructure.schema import check_schema, create_schema
from infrastructure.settings import Settings


def add_database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="sqlite:///path/to/file.db (default sqlite:///bso.db), postgresql://user:pass@host:port/db, "
        "or memory:// (env BSO_DATABASE_URL)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with every flag the user gave taking precedence."""
    return Settings.from_env().override(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        trial_lease_seconds=getattr(args, "trial_lease_seconds", None),
    )


def guarded(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except (AuditNotFoundError, ArchiveError) as error:
        print(f"bso {args.command}: {error}", file=sys.stderr)
        return 1


def positive(text: str) -> int:
    return _number_flag(text, 1)


def non_negative(text: str) -> int:
    return _number_flag(text, 0)


def _number_flag(text: str, minimum: int) -> int:
    try:
        return parse_number(text, minimum)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on standard error (default: when it is a terminal and --json is not given)",
    )


@contextlib.contextmanager
def opened_audit(args: argparse.Namespace, create: bool = False) -> Iterator[JobAudit]:
    """The store's audit queries; read-only (never writes, never creates a file) unless ``create``."""
    settings = settings_from(args)
    if create:
        create_schema(BatchSizeOptimizer, settings)
    else:
        check_schema(BatchSizeOptimizer, settings, read_only=True)
    app = BatchSizeOptimizer(
        env=settings.override(create_schema=False).persistence_env(read_only=not create),
        spec_limits=settings.spec_limits,
    )
    try:
        yield JobAudit(app)
    finally:
        app.close()


class TerminalProgress:
    """A tqdm bar on standard error, fed with (done, total) by long work."""

    def __init__(self, label: str, unit: str) -> None:
        self.label, self.unit = label, unit
        self._bar: tqdm | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.label, unit=self.unit, file=sys.stderr, dynamic_ncols=True)
        self._bar.update(done - self._bar.n)
        if done >= total:
            self._bar.close()


def progress_for(args: argparse.Namespace, label: str, unit: str = "event") -> TerminalProgress | None:
    """A bar when asked with --progress, or by default on a terminal unless --json is given."""
    wanted = args.progress
    if wanted is None:
        wanted = sys.stderr.isatty() and not getattr(args, "json", False) and getattr(args, "format", "table") == "table"
    return TerminalProgress(label, unit) if wanted else None


def add_wide_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wide", action="store_true", help="every column in full (default: cut to the terminal's width)"
    )


def add_format_flag(parser: argparse.ArgumentParser) -> None:
    """``--format table|csv|json``; ``--json`` stays, as scripts written before ``--format`` use it."""
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format (default table)")
    parser.add_argument("--json", dest="format", action="store_const", const="json", help="the same as --format json")


def print_json(data: Any) -> None:
    print(finite_json(data, indent=2))


def print_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    sys.stdout.write(csv_text(rows, columns))
