"""``bso serve``: the HTTP server, with one or more worker processes."""

import argparse
import contextlib
import copy
import logging
import logging.config
import os
import shutil
import signal
import socket
import tempfile
from types import FrameType
from typing import Any, Iterator


from api.cli.shared import add_database_flag, settings_from
from application.service import BatchSizeOptimizer
from infrastructure.lifecycle import (
    BACKSTOP_VARIABLE,
    SHUTDOWN_MARGIN_SECONDS,
    SUPERVISOR_PID_VARIABLE,
    raise_open_file_limit,
)
from infrastructure.schema import check_schema, create_schema, redacted
from infrastructure.settings import Settings, SettingsError


# How long uvicorn lets a worker take to answer its health check. Its default (5 s) is
# shorter than a worker's imports take on a busy machine; the worker was then killed
# and restarted over and over, and the server never became ready.
WORKER_STARTUP_SECONDS = 30

# uvicorn's httptools protocol with limits on heads and connections (docs/operations.md, "Faults and limits").
HTTP_PROTOCOL = "infrastructure.http_protocol:LimitedHttpToolsProtocol"
# Descriptors a worker needs besides its clients' connections: store, pool, logs, metrics.
SPARE_FILE_DESCRIPTORS = 100


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
    parser.add_argument(
        "--graceful-timeout",
        type=_positive_seconds,
        help="at shutdown (SIGTERM, SIGINT), let in-flight requests finish for this long, then cancel "
        "them; the process exits within about 5 s more whatever else is slow (default 30, env BSO_GRACEFUL_TIMEOUT)",
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
        graceful_timeout_seconds=args.graceful_timeout,
    )
    settings.check_exposure()
    if args.workers > 1 and settings.database_url.startswith("memory:"):
        raise SettingsError("memory:// keeps events inside one process: use --workers 1 or a database URL")
    check_port_free(settings.host, settings.port)  # before the store: a failed start creates no database
    prepare_event_store(settings)  # a store it cannot open or read is a one-line StoreUnavailableError
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
        BSO_GRACEFUL_TIMEOUT=str(settings.graceful_timeout_seconds),
        # Only processes started here end themselves when shutdown outlasts its bound.
        **{BACKSTOP_VARIABLE: str(SHUTDOWN_MARGIN_SECONDS)},
    )
    # Workers watch this process, and leave when it dies (even by SIGKILL) rather than serve on.
    os.environ.pop(SUPERVISOR_PID_VARIABLE, None)
    if args.workers > 1:
        os.environ[SUPERVISOR_PID_VARIABLE] = str(os.getpid())
    logger = _uvicorn_style_logger(settings.log_level)
    _fit_connections_to_descriptors(settings, logger)
    logger.info("Event store: %s", redacted(settings.database_url))
    logger.info("Serving %s with %d worker process(es)", _address(settings.host, settings.port), args.workers)
    with _metrics_directory(args.workers):
        uvicorn.run(
            "api.http.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=args.workers,
            log_level=settings.log_level,
            log_config=_log_config(),
            timeout_worker_healthcheck=WORKER_STARTUP_SECONDS,
            http=HTTP_PROTOCOL,
            timeout_graceful_shutdown=settings.graceful_timeout_seconds,  # type: ignore[arg-type]
        )
    return 0


@contextlib.contextmanager
def _metrics_directory(workers: int) -> Iterator[None]:
    """Where the workers keep their metric values: a fresh PROMETHEUS_MULTIPROC_DIR, removed
    when the server stops, for two or more; this process's memory for one.

    Fresh, because values left by an earlier server would be added to this one's. None for
    one worker, because memory-mapped values cost a file write, a lock and a pid check on
    every increment: under the load benchmark, prometheus-client's share of the server's
    Python samples (py-spy) fell from 3.8% to 2.0% without them.
    """
    # A single-process uvicorn re-raises SIGTERM after its graceful shutdown; as an
    # exception rather than the default handler's death, it lets the clean-up below run.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    inherited = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    path = tempfile.mkdtemp(prefix="bso-metrics-") if workers > 1 else None
    if path:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if path:
            shutil.rmtree(path, ignore_errors=True)
        if inherited is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = inherited


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _uvicorn_style_logger(level: str) -> logging.Logger:
    """uvicorn's own logger and format, set up early so our lines read like its lines."""
    from uvicorn.config import LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)
    logger = logging.getLogger("uvicorn.error")
    logger.setLevel(level.upper())
    return logger


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with bso's own loggers (store failures, readiness, lifecycle) on its
    handler and format in every process, workers included."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["bso"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _fit_connections_to_descriptors(settings: Settings, logger: logging.Logger) -> None:
    """Raise the open-file limit (inherited by workers) to fit BSO_MAX_CONNECTIONS; if the hard
    limit is lower, lower the connection limit so that a flood gets 503s, not a dead accept loop."""
    available = raise_open_file_limit(settings.max_connections + SPARE_FILE_DESCRIPTORS)
    fitting = max(1, available - SPARE_FILE_DESCRIPTORS)
    if fitting < settings.max_connections:
        logger.warning(
            "Open-file limit %d leaves room for %d connections per worker, not BSO_MAX_CONNECTIONS=%d: "
            "using %d (raise `ulimit -n` to allow more)",
            available, fitting, settings.max_connections, fitting,
        )
    os.environ["BSO_MAX_CONNECTIONS"] = str(min(fitting, settings.max_connections))


def _address(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_port_free(host: str, port: int) -> None:
    """Bind the address the way uvicorn will, and let it go: a port in use is a one-line error.

    uvicorn binds only after the event store is prepared, so without this a server that
    cannot start would still have created its SQLite file and tables.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as error:
            raise SettingsError(f"cannot listen on {_address(host, port)}: {error.strerror}") from None


def prepare_event_store(settings: Settings) -> None:
    """Create the tables (or check they exist) in this parent process, before workers start."""
    settings.persistence_env()  # fail fast on a bad URL
    if settings.database_url.startswith("memory:"):
        return  # nothing persistent to prepare
    if settings.create_schema:
        create_schema(BatchSizeOptimizer, settings)
    else:
        check_schema(BatchSizeOptimizer, settings, integrity=True)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
