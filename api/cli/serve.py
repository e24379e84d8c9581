"""``bso serve``: the HTTP server, with one or more worker processes."""

import argparse
import os

from api.cli.shared import add_database_flag, settings_from
from application.service import BatchSizeOptimizer
from infrastructure.schema import check_schema, create_schema
from infrastructure.settings import Settings, SettingsError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="run the HTTP server (Zeus-compatible routes)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1, env BSO_HOST)")
    parser.add_argument("--port", type=int, help="port to bind (default 8000, env BSO_PORT)")
    parser.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes (default 1); several servers may share one database",
    )
    parser.add_argument(
        "--trial-lease-seconds",
        type=float,
        help="expire a trial not heard from for this long (default 86400, env BSO_TRIAL_LEASE_SECONDS)",
    )
    parser.add_argument(
        "--no-create-schema",
        dest="create_schema",
        action="store_false",
        default=None,
        help="do not create the tables at start; fail clearly if they are missing (env BSO_CREATE_SCHEMA=n)",
    )
    parser.add_argument(
        "--pool-size", type=_positive, help="PostgreSQL connections kept per worker (default 5, env BSO_POOL_SIZE)"
    )
    parser.add_argument(
        "--pool-max-overflow",
        type=int,
        help="extra PostgreSQL connections per worker under load (default 10, env BSO_POOL_MAX_OVERFLOW)",
    )
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        default=None,
        help="serve a non-loopback address without BSO_AUTH_TOKEN (for clients that cannot send a "
        "token, such as Zeus's; env BSO_ALLOW_UNAUTHENTICATED=y)",
    )
    add_database_flag(parser)
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = settings_from(args).override(
        create_schema=args.create_schema,
        pool_size=args.pool_size,
        pool_max_overflow=args.pool_max_overflow,
        allow_unauthenticated=args.allow_unauthenticated,
    )
    settings.check_exposure()
    if args.workers > 1 and settings.database_url.startswith("memory:"):
        raise SettingsError("memory:// keeps events inside one process: use --workers 1 or a database URL")
    prepare_event_store(settings)
    # Workers build their settings from the environment: hand ours down, with schema
    # creation off (it happened above, once, before any worker started).
    os.environ.update(
        BSO_DATABASE_URL=settings.database_url,
        BSO_HOST=settings.host,
        BSO_PORT=str(settings.port),
        BSO_TRIAL_LEASE_SECONDS=str(settings.trial_lease_seconds),
        BSO_CREATE_SCHEMA="n",
        BSO_POOL_SIZE=str(settings.pool_size),
        BSO_POOL_MAX_OVERFLOW=str(settings.pool_max_overflow),
    )
    uvicorn.run(
        "api.http.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level=settings.log_level,
    )
    return 0


def prepare_event_store(settings: Settings) -> None:
    """Create the tables (or check they exist) in this parent process, before workers start."""
    settings.persistence_env()  # fail fast on a bad URL
    if settings.database_url.startswith("memory:"):
        return  # nothing persistent to prepare
    if settings.create_schema:
        create_schema(BatchSizeOptimizer, settings)
    else:
        check_schema(BatchSizeOptimizer, settings, integrity=True)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
