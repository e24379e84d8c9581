"""What several ``bso`` subcommands share: the store flag, opening the store, errors, output."""

import argparse
import contextlib
import json
import sys
from typing import Any, Callable, Iterator, Sequence, TextIO

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
        help="progress bar on standard error (default: when it is a terminal)",
    )


@contextlib.contextmanager
def opened_audit(args: argparse.Namespace, create: bool = False) -> Iterator[JobAudit]:
    """The store's audit queries; read-only (never writes, never creates a file) unless ``create``."""
    settings = settings_from(args)
    if create:
        create_schema(BatchSizeOptimizer, settings)
    else:
        check_schema(BatchSizeOptimizer, settings, read_only=True)
    app = BatchSizeOptimizer(env=settings.override(create_schema=False).persistence_env(read_only=not create))
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
    print(finite_json(data, indent=2))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)]
    print("  ".join(column.ljust(width) for column, width in zip(columns, widths)).rstrip())
    for line in cells:
        print("  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip())


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
