"""``bso serve``: the HTTP server."""

import argparse
import os

from api.commands.common import add_database_flag, settings_from


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="run the HTTP server (Zeus-compatible routes)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1, env BSO_HOST)")
    parser.add_argument("--port", type=int, help="port to bind (default 8000, env BSO_PORT)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--trial-lease-seconds",
        type=float,
        help="expire a trial not heard from for this long (default 86400, env BSO_TRIAL_LEASE_SECONDS)",
    )
    add_database_flag(parser)
    parser.set_defaults(handler=serve)


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
