"""Optional bearer-token authentication, as pure ASGI middleware.

Every route that changes state needs the token: POST, PATCH, DELETE and
``GET /jobs/batch_size`` (which dispatches a trial). Reads (``/v1``, ``/metrics``)
need it only when ``protect_reads`` is on; health checks never do, so that
orchestrators can probe the server, and neither do the dashboard's pages and
static files, which hold no data (the page asks for the token when a read needs it).
"""

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.http.dashboard import PAGE_PATHS, PAGE_PREFIXES

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MUTATING_GETS = frozenset({"/jobs/batch_size"})


class BearerTokenAuth:
    def __init__(self, app: ASGIApp, token: str, protect_reads: bool) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.protect_reads = protect_reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._needs_token(scope) or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"message": "Missing or wrong bearer token: send 'Authorization: Bearer <token>'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)

    def _needs_token(self, scope: Scope) -> bool:
        path, method = scope["path"], scope["method"]
        if path in OPEN_PATHS or (method in ("GET", "HEAD") and (path in PAGE_PATHS or path.startswith(PAGE_PREFIXES))):
            return False
        if method in MUTATING_METHODS or path in MUTATING_GETS:
            return True
        return self.protect_reads

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self.expected)
        return False
