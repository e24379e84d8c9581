"""Translate failures into JSON responses: 4xx with a message, never a stack trace."""

import logging
from typing import Any, Mapping

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from application.idempotency import IdempotencyKeyReusedError
from application.retry import ConcurrencyConflictError
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
    return message(500, "Internal server error; the request was not applied. See the server log.")


EXCEPTION_HANDLERS = {
    RequestError: handle_request_error,
    DomainError: handle_domain_error,
    NotFoundError: handle_domain_error,
    ConcurrencyConflictError: handle_domain_error,
    HTTPException: handle_http_error,
    Exception: handle_unexpected,
}
