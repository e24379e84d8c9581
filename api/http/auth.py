"""Optional bearer-token authentication, as pure ASGI middleware.

With ``BSO_AUTH_TOKEN`` set, every route that changes state needs it: POST, PATCH,
DELETE and ``GET /jobs/batch_size`` (which dispatches a trial). Reads (``/v1``,
``/metrics``) need it only when ``protect_reads`` is on, or need the separate read
token (``BSO_READ_TOKEN``, the write token works too) when one is set. Health checks
never do, so that orchestrators can probe the server, and neither do the dashboard's
pages and static files, which hold no data (the page asks for the token when a read
needs it).

Whether the caller may write is left in the scope for the routes: reads show what
lets anyone predict a job's next random draws only to callers allowed to write
(see ``may_write``).
"""

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.http.dashboard import PAGE_PATHS, PAGE_PREFIXES

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MUTATING_GETS = frozenset({"/jobs/batch_size"})
_MAY_WRITE = "bso.may_write"


def may_write(request: Request) -> bool:
    """True when no write token is set, or the request carries it."""
    return request.scope.get(_MAY_WRITE, True)


class BearerTokenAuth:
    def __init__(self, app: ASGIApp, token: str | None, protect_reads: bool, read_token: str | None = None) -> None:
        self.app = app
        self.write = f"Bearer {token}".encode() if token else None
        self.read = f"Bearer {read_token}".encode() if read_token else None
        self.protect_reads = protect_reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = self._sent_token(scope)
        writer = self.write is None or _matches(sent, self.write)
        scope[_MAY_WRITE] = writer
        if writer or self._reader_allowed(scope, sent):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"message": "Missing or wrong bearer token: send 'Authorization: Bearer <token>'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)

    def _reader_allowed(self, scope: Scope, sent: bytes | None) -> bool:
        path, method = scope["path"], scope["method"]
        if path in OPEN_PATHS or (method in ("GET", "HEAD") and (path in PAGE_PATHS or path.startswith(PAGE_PREFIXES))):
            return True
        if method in MUTATING_METHODS or path in MUTATING_GETS:
            return False
        if self.read is not None:
            return _matches(sent, self.read)
        return not self.protect_reads

    @staticmethod
    def _sent_token(scope: Scope) -> bytes | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return value
        return None


def _matches(sent: bytes | None, expected: bytes) -> bool:
    return sent is not None and hmac.compare_digest(sent, expected)
