"""The Starlette application: one optimizer Application per process, built in the lifespan."""

import asyncio
import contextlib
import gc
import logging
import os
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
from api.http.errors import EXCEPTION_HANDLERS, STORE_RETRY_AFTER_SECONDS, AnswerCancelledRequests, FailureLog, message, store_failure_text
from api.http.view_cache import RenderedViews
from application.audit import JobAudit
from application.service import BatchSizeOptimizer
from infrastructure.conflict_lanes import conflict_lanes_for
from infrastructure.lifecycle import BACKSTOP_VARIABLE, SUPERVISOR_PID_VARIABLE, exit_backstop, watch_supervisor
from infrastructure.schema import probe_store, probe_writes
from infrastructure.settings import Settings
from infrastructure.tokens import TokenFile

logger = logging.getLogger("bso.api")
log_not_ready = FailureLog("readiness check failed, answered 503")


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
    """Read what every route needs: the newest notifications, decoded, the job catalog and the
    first job's state (not a page of job rows: each row's summary may fold a long job's trials)."""
    probe_store(audit.app, integrity=False)
    entries, _ = audit.catalog.page("", 0, 1)
    if entries:
        audit.current_state(entries[0].job_uuid)


def close_within(optimizer: BatchSizeOptimizer, seconds: float) -> None:
    """Close the optimizer's store, unless a command still holds it after ``seconds`` (one stuck
    on a lock or an unreachable database after the graceful timeout cancelled its request)."""
    closer = threading.Thread(target=optimizer.close, name="bso-close", daemon=True)
    closer.start()
    closer.join(seconds)
    if closer.is_alive():
        logger.warning("event store not closed within %g s: a command still holds it", seconds)


def check_the_store(audit: JobAudit) -> None:
    """Ready means a command could run now: the store reads, and a write would succeed."""
    read_the_store(audit)
    probe_writes(audit.app)


CLOSE_SECONDS = 2.0  # closing the store waits this long at most for commands still running
AFTER_CLOSE_SECONDS = 1.0  # a served process still alive this long after closing its store is ended
READY_SECONDS = 1.5  # /readyz answers within this (and its own overhead), whatever the store does


class Readiness:
    """Runs the readiness check on a thread of its own, never on the commands' or the reads'
    threads (which a store that hangs, or a lock held for seconds, may all be waiting on).

    One check runs at a time; concurrent probes share it. A check still running after
    READY_SECONDS is answered "not ready" and left to finish (its thread is a daemon),
    and the next probe waits on it rather than starting another.
    """

    def __init__(self, audit: JobAudit) -> None:
        self.audit = audit
        self._running: asyncio.Future[None] | None = None

    async def why_not_ready(self) -> str | None:
        """None when ready, else one line saying why not."""
        if self._running is None or self._running.done():
            self._running = self._start()
        try:
            await asyncio.wait_for(asyncio.shield(self._running), READY_SECONDS)
        except TimeoutError:
            return f"the event store did not answer within {READY_SECONDS:g} s"
        except Exception as error:  # any failure to read or write the store means "not ready"
            return store_failure_text(error)
        return None

    def _start(self) -> "asyncio.Future[None]":
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        def run() -> None:
            try:
                check_the_store(self.audit)
            except Exception as error:
                loop.call_soon_threadsafe(settle, error)
            else:
                loop.call_soon_threadsafe(settle, None)

        future.add_done_callback(lambda done: done.cancelled() or done.exception())  # never "never retrieved"
        threading.Thread(target=run, name="bso-readyz", daemon=True).start()
        return future


async def readyz(request: Request) -> Response:
    why = await request.app.state.readiness.why_not_ready()
    if why is not None:
        log_not_ready(why)
        return message(503, f"Event store not ready: {why.split(':', 1)[0]}", headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)})
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
        # What the start made (modules, the application) lives as long as the process: kept out
        # of the collector's reach, a read that decodes thousands of trial views (the first of a
        # big job after a restart) does not scan it again at each collection it sets off.
        gc.freeze()
        # Reads get threads of their own and reanalyses a bounded number of slots, so that
        # readers never take the threads (or the memory) trainers' commands need.
        app.state.read_limiter = CapacityLimiter(settings.read_threads)
        app.state.reanalysis_slots = threading.Semaphore(settings.max_reanalyses)
        app.state.rendered_views = RenderedViews()
        app.state.body_deadlines = BodyDeadlines()
        watchdog = asyncio.create_task(app.state.body_deadlines.watch())
        app.state.readiness = Readiness(app.state.audit)
        # Set by `bso serve` only: a test client's app must never end its process.
        supervisor_pid = os.environ.get(SUPERVISOR_PID_VARIABLE)
        if supervisor_pid:
            watch_supervisor(int(supervisor_pid))
        backstop = float(os.environ.get(BACKSTOP_VARIABLE) or 0)
        if token_file is not None:
            reload_on_hangup(token_file)
        try:
            yield
        finally:
            if backstop:  # in-flight requests are done or cancelled: what remains is bounded
                exit_backstop(backstop)
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            if optimizer is None:
                close_within(app.state.optimizer, CLOSE_SECONDS)
            if backstop:  # closed: only threads stuck in a store call could keep the process now
                exit_backstop(AFTER_CLOSE_SECONDS)

    routes = [
        *zeus_routes.routes,
        *metrics_routes.routes,
        *audit_routes.routes,
        *openapi.routes,
        *dashboard.routes,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    middleware = [Middleware(AnswerCancelledRequests), Middleware(metrics.RequestMetrics, routes=routes)]
    token_file = TokenFile(Path(settings.tokens_file)) if settings.tokens_file else None
    if settings.writes_need_token or settings.reads_need_token:
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
