"""The Starlette application: one optimizer Application per process, built in the lifespan."""

import asyncio
import contextlib
import logging
import signal
import threading
from pathlib import Path
from typing import AsyncIterator

from anyio import CapacityLimiter, to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.http import audit_routes, dashboard, metrics, metrics_routes, openapi, zeus_routes
from api.http.auth import BearerTokenAuth
from api.http.body_deadlines import BodyDeadlines
from api.http.errors import EXCEPTION_HANDLERS, message
from api.http.view_cache import RenderedViews
from application.audit import JobAudit
from application.service import BatchSizeOptimizer
from infrastructure.conflict_lanes import conflict_lanes_for
from infrastructure.schema import probe_store
from infrastructure.settings import Settings
from infrastructure.tokens import TokenFile

logger = logging.getLogger("bso.api")


def build_optimizer(settings: Settings) -> BatchSizeOptimizer:
    return BatchSizeOptimizer(
        env=settings.persistence_env(),
        lease_seconds=settings.trial_lease_seconds,
        conflict_lanes=conflict_lanes_for(settings),
        spec_limits=settings.spec_limits,
        default_policy=settings.default_policy,
        observer=metrics.queue_observation,
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def read_the_store(audit: JobAudit) -> None:
    """Read what every route needs: the newest notifications, decoded, and a page of the job list."""
    probe_store(audit.app, integrity=False)
    audit.list_jobs(limit=1)


async def readyz(request: Request) -> Response:
    try:
        await run_in_threadpool(read_the_store, request.app.state.audit)
    except Exception as error:  # any failure to read the store means "not ready"
        logger.warning("readiness check failed: %s", error)
        return message(503, f"Event store unreachable: {type(error).__name__}")
    return JSONResponse({"status": "ready"})


def reload_on_hangup(token_file: TokenFile) -> None:
    """Read the tokens file again on SIGHUP, in the process that serves (where a signal
    handler can be set: a server's main thread, not an app run by a test client)."""
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, token_file.reload)


def create_app(settings: Settings | None = None, optimizer: BatchSizeOptimizer | None = None) -> Starlette:
    """The ASGI app. Pass ``optimizer`` to share one (tests); else it is built at startup."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings
        # Commands hold the GIL for most of their time: a few threads per process
        # serve as many requests as forty and keep the tail latency far shorter.
        to_thread.current_default_thread_limiter().total_tokens = settings.command_threads()
        app.state.optimizer = optimizer or await run_in_threadpool(build_optimizer, settings)
        app.state.audit = JobAudit(app.state.optimizer)
        # Reads get threads of their own and reanalyses a bounded number of slots, so that
        # readers never take the threads (or the memory) trainers' commands need.
        app.state.read_limiter = CapacityLimiter(settings.read_threads)
        app.state.reanalysis_slots = threading.Semaphore(settings.max_reanalyses)
        app.state.rendered_views = RenderedViews()
        app.state.body_deadlines = BodyDeadlines()
        watchdog = asyncio.create_task(app.state.body_deadlines.watch())
        if token_file is not None:
            reload_on_hangup(token_file)
        try:
            yield
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            if optimizer is None:
                app.state.optimizer.close()

    routes = [
        *zeus_routes.routes,
        *metrics_routes.routes,
        *audit_routes.routes,
        *openapi.routes,
        *dashboard.routes,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    middleware = [Middleware(metrics.RequestMetrics, routes=routes)]
    token_file = TokenFile(Path(settings.tokens_file)) if settings.tokens_file else None
    if settings.auth_token or settings.read_token or token_file:
        middleware.append(
            Middleware(
                BearerTokenAuth,
                token=settings.auth_token,
                protect_reads=settings.auth_reads,
                read_token=settings.read_token,
                token_file=token_file,
            )
        )
    return Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
