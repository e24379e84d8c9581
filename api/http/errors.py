"""Translate failures into JSON responses: 4xx with a message, never a stack trace.

A failure of the event store (unreachable, timed out, lost, full) is a 503 with
Retry-After, and like any 500 it closes the connection: whatever broke may have
left the connection's state unknown, and a client reconnecting starts clean.
"""

import asyncio
import logging
import sqlite3
import threading
import time
from typing import Any, Mapping

import psycopg
from eventsourcing.persistence import PersistenceError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from application.idempotency import IdempotencyKeyReusedError
from application.retry import ConcurrencyConflictError
from application.service import OutcomeUnknownError
from domain.errors import (
    BadOperationError,
    DomainError,
    InvalidReportError,
    InvalidSpecError,
    NoConvergedBatchSizeError,
    SpecMismatchError,
    TrialAbandonedError,
    UnknownTrialError,
)

logger = logging.getLogger("bso.api")


class RequestError(Exception):
    """A request the API refuses before it reaches the application."""

    def __init__(
        self,
        status_code: int,
        message: str,
        detail: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.detail = detail
        self.headers = headers


class NotFoundError(Exception):
    """Raised by routes whose Zeus counterpart answers 404 (PATCH /trials, DELETE /jobs)."""


_DOMAIN_STATUS: list[tuple[type[Exception], int]] = [
    (NotFoundError, 404),
    (UnknownTrialError, 404),
    (SpecMismatchError, 409),
    (NoConvergedBatchSizeError, 409),
    (TrialAbandonedError, 409),
    (ConcurrencyConflictError, 409),
    (IdempotencyKeyReusedError, 409),
    (BadOperationError, 400),
    (DomainError, 400),
]


def message(status_code: int, text: str, headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": text, **extra}, status_code=status_code, headers=headers)


def validation_failed(error: ValidationError) -> RequestError:
    detail = [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"], "type": item["type"]}
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in detail)
    return RequestError(422, f"Invalid request: {summary}", detail)


async def handle_request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestError)
    extra = {"detail": exc.detail} if exc.detail is not None else {}
    return message(exc.status_code, exc.message, headers=exc.headers, **extra)


async def handle_domain_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, (InvalidSpecError, InvalidReportError)):
        detail = [{"field": exc.field, "message": str(exc), "type": "value_error"}]
        return message(422, f"Invalid request: {exc}", detail=detail)
    for kind, status_code in _DOMAIN_STATUS:
        if isinstance(exc, kind):
            return message(status_code, str(exc))
    return await handle_unexpected(request, exc)


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    # Keep the exception's headers: a 405 must say which methods are allowed (Allow).
    return message(exc.status_code, exc.detail or "HTTP error", headers=exc.headers)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return message(
        500, "Internal server error; the request was not applied. See the server log.", headers=CLOSE_CONNECTION
    )


CLOSE_CONNECTION = {"Connection": "close"}
STORE_RETRY_AFTER_SECONDS = 5
# A store that failed: come back later, on a new connection.
STORE_FAILED_HEADERS = {"Retry-After": str(STORE_RETRY_AFTER_SECONDS), **CLOSE_CONNECTION}
STORE_LOG_INTERVAL_SECONDS = 10.0


class FailureLog:
    """One log line per kind of failure every few seconds, with how many were not logged:
    an outage fails every request, and a line for each would flood the log."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._lock = threading.Lock()
        self._last: tuple[str, float] | None = None
        self._unlogged = 0

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            if self._last is not None and self._last[0] == text and now - self._last[1] < STORE_LOG_INTERVAL_SECONDS:
                self._unlogged += 1
                return
            unlogged, self._unlogged, self._last = self._unlogged, 0, (text, now)
        more = f" ({unlogged} more since the last line)" if unlogged else ""
        logger.error("%s: %s%s", self.what, text, more)


log_store_failure = FailureLog("event store failure, answered 503")


def store_failure_text(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


async def handle_store_failure(request: Request, exc: Exception) -> JSONResponse:
    """The event store failed under a request, which is therefore not acknowledged (a write cut
    off mid-commit may still have been kept: the same Idempotency-Key finds out)."""
    text = store_failure_text(exc)
    log_store_failure(text)
    return message(
        503,
        # The log says why; the client learns the kind only (hosts and paths stay in the log).
        f"Event store unavailable ({type(exc).__name__}); the request was not acknowledged. "
        "Retry later (with the same Idempotency-Key, if it had one).",
        headers=STORE_FAILED_HEADERS,
    )


async def handle_outcome_unknown(request: Request, exc: Exception) -> JSONResponse:
    """The store failed during the commit and cannot be read to tell whether it went through."""
    log_store_failure(store_failure_text(exc))
    return message(
        503, str(exc), headers=STORE_FAILED_HEADERS
    )


EXCEPTION_HANDLERS = {
    RequestError: handle_request_error,
    OutcomeUnknownError: handle_outcome_unknown,
    DomainError: handle_domain_error,
    NotFoundError: handle_domain_error,
    ConcurrencyConflictError: handle_domain_error,
    HTTPException: handle_http_error,
    # What the store raises, through eventsourcing or below it (psycopg_pool's PoolTimeout is
    # a psycopg error). IntegrityError never gets here: commands retry it, or answer 409.
    PersistenceError: handle_store_failure,
    sqlite3.Error: handle_store_failure,
    psycopg.Error: handle_store_failure,
    Exception: handle_unexpected,
}


class AnswerCancelledRequests:
    """A request cancelled by the server's shutdown (its graceful timeout ran out) is answered
    503 with ``Connection: close``, not uvicorn's 500 and traceback. Its command may still be
    running in a thread, so the answer cannot say it was not applied: a retry with the same
    ``Idempotency-Key`` finds out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(event: Message) -> None:
            nonlocal started
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if started:
                raise
            logger.warning("%s %s cut off by the shutdown: answered 503", scope.get("method"), scope.get("path"))
            response = message(
                503,
                "Server shutting down; this request was cut off and may or may not have been applied. "
                "Retry (with the same Idempotency-Key, if it had one).",
                headers=STORE_FAILED_HEADERS,
            )
            await response(scope, receive, send)
