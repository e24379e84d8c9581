"""The ``bso`` command line."""

import argparse
import os
import sys
from typing import Callable, Sequence

from infrastructure.settings import Settings, SettingsError

Command = Callable[[argparse.Namespace], int]


def add_database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="sqlite:///path/to/file.db (default sqlite:///bso.db), postgresql://user:pass@host:port/db, "
        "or memory:// (env BSO_DATABASE_URL)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env().override(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        trial_lease_seconds=getattr(args, "trial_lease_seconds", None),
    )


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = settings_from(args)
    settings.persistence_env()  # fail fast on a bad URL, before any worker starts
    # Worker processes build their settings from the environment: hand ours down.
    os.environ.update(
        BSO_DATABASE_URL=settings.database_url,
        BSO_HOST=settings.host,
        BSO_PORT=str(settings.port),
        BSO_TRIAL_LEASE_SECONDS=str(settings.trial_lease_seconds),
    )
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level=settings.log_level,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bso",
        description="Event-sourced batch size optimizer: a drop-in replacement for the Zeus BSO server.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_parser = commands.add_parser("serve", help="run the HTTP server (Zeus-compatible routes)")
    serve_parser.add_argument("--host", help="address to bind (default 127.0.0.1, env BSO_HOST)")
    serve_parser.add_argument("--port", type=int, help="port to bind (default 8000, env BSO_PORT)")
    serve_parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve_parser.add_argument(
        "--trial-lease-seconds",
        type=float,
        help="expire a trial not heard from for this long (default 86400, env BSO_TRIAL_LEASE_SECONDS)",
    )
    add_database_flag(serve_parser)
    serve_parser.set_defaults(handler=serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except SettingsError as error:
        print(f"bso: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
