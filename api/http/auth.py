"""Optional bearer-token authentication, as pure ASGI middleware, and the scope of each token.

With ``BSO_AUTH_TOKEN`` set, every route that changes state needs it: POST, PATCH,
DELETE and ``GET /jobs/batch_size`` (which dispatches a trial). Reads (``/v1``,
``/metrics``) need it only when ``protect_reads`` is on, or need the separate read
token (``BSO_READ_TOKEN``, the write token works too) when one is set. Health checks
never do, so that orchestrators can probe the server, and neither do the dashboard's
pages and static files, which hold no data (the page asks for the token when a read
needs it).

Scoped tokens (``BSO_TOKENS_FILE``, infrastructure/tokens.py) each cover the jobs whose
id starts with one of their prefixes, to write (and read) or to read only. With a tokens
file every route but the open ones needs a token. The middleware only says who the caller
is (a ``Principal`` in the scope); the routes, which know the job a request is about,
refuse a job outside the caller's prefixes with 403 (``authorize_job``), the same answer
whether or not the job exists.

Whether the caller may write is left in the scope for the routes: reads show what
lets anyone predict a job's next random draws only to callers allowed to write
(see ``may_write``).
"""

import hmac
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.http.dashboard import PAGE_PATHS, PAGE_PREFIXES
from api.http.errors import RequestError
from infrastructure.tokens import WRITE, TokenFile

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MUTATING_GETS = frozenset({"/jobs/batch_size"})
_PRINCIPAL = "bso.principal"


@dataclass(frozen=True)
class Principal:
    """Who is calling: whether they may write, and which jobs they may use (None: every job)."""

    name: str
    may_write: bool
    prefixes: tuple[str, ...] | None = None

    def covers(self, job_id: str) -> bool:
        return self.prefixes is None or job_id.startswith(self.prefixes)


# A server with no token at all: everyone may do everything.
ANYONE = Principal("anyone", may_write=True)


def principal_of(request: Request) -> Principal:
    return request.scope.get(_PRINCIPAL, ANYONE)


def may_write(request: Request) -> bool:
    """True when no write token is set, or the request carries one that may write."""
    return principal_of(request).may_write


def authorize_job(request: Request, job_id: str) -> None:
    """403 unless the caller's token covers this job id (said alike whether the job exists)."""
    principal = principal_of(request)
    if not principal.covers(job_id):
        raise RequestError(403, f"The token {principal.name!r} may not use job {job_id!r}: it covers job ids starting with {', '.join(principal.prefixes or ())}")


class BearerTokenAuth:
    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        protect_reads: bool,
        read_token: str | None = None,
        token_file: TokenFile | None = None,
    ) -> None:
        self.app = app
        self.write = f"Bearer {token}".encode() if token else None
        self.read = f"Bearer {read_token}".encode() if read_token else None
        self.token_file = token_file
        # Who needs no token: writers when no write token or tokens file is set, readers when
        # reads are not protected by any of them either.
        self.anonymous = Principal(
            "anonymous",
            may_write=self.write is None and token_file is None,
        )
        self.reads_open = not protect_reads and self.read is None and token_file is None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        principal = self._principal(self._sent_token(scope))
        scope[_PRINCIPAL] = principal or self.anonymous
        if self._allowed(scope, principal):
            await self.app(scope, receive, send)
            return
        if principal is not None:  # a known token that may only read
            response = JSONResponse({"message": f"The token {principal.name!r} may only read"}, status_code=403)
        else:
            response = JSONResponse(
                {"message": "Missing or wrong bearer token: send 'Authorization: Bearer <token>'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        await response(scope, receive, send)

    def _principal(self, sent: bytes | None) -> Principal | None:
        """The caller the token names; None for no token or one this server does not know."""
        if sent is None:
            return None
        if self.write is not None and hmac.compare_digest(sent, self.write):
            return Principal("BSO_AUTH_TOKEN", may_write=True)
        if self.read is not None and hmac.compare_digest(sent, self.read):
            return Principal("BSO_READ_TOKEN", may_write=False)
        if self.token_file is not None and sent.startswith(b"Bearer "):
            scoped = self.token_file.find(sent.removeprefix(b"Bearer ").decode("latin-1"))
            if scoped is not None:
                return Principal(scoped.name, may_write=scoped.role == WRITE, prefixes=scoped.prefixes)
        return None

    def _allowed(self, scope: Scope, principal: Principal | None) -> bool:
        path, method = scope["path"], scope["method"]
        if path in OPEN_PATHS or (method in ("GET", "HEAD") and (path in PAGE_PATHS or path.startswith(PAGE_PREFIXES))):
            return True
        if method in MUTATING_METHODS or path in MUTATING_GETS:
            return (principal or self.anonymous).may_write
        return principal is not None or self.reads_open

    @staticmethod
    def _sent_token(scope: Scope) -> bytes | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return value
        return None
