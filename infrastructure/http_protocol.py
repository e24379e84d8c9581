"""uvicorn's httptools HTTP/1.1 protocol with the limits it lacks on what precedes a body.

uvicorn (0.55) with httptools reads a request's head for as long as the client
takes and as large as it is: a connection may trickle one byte at a time forever
(its keep-alive timer only runs between requests, and any byte stops it), a 16 MB
header or 100,000 headers are accepted, and connections are accepted until the
process runs out of file descriptors, locking every client out. (uvicorn's h11
protocol caps the head at 16 KB, and nothing else; its ``limit_concurrency`` answers
503 only once a request's head is complete, so slow heads still hold their sockets.)

``LimitedHttpToolsProtocol`` adds, per worker process:

* a head deadline: a connection that has not sent a complete request line and
  headers within ``BSO_HEADER_TIMEOUT_SECONDS`` of connecting, or of the first byte
  of its next request (checked every half second), is answered 408 (closed silently
  if it sent nothing);
* a head size: more than ``BSO_MAX_HEADER_BYTES`` before the end of the headers is
  answered 431 and closed, before httptools buffers more than one read beyond it;
* a header count: more than ``BSO_MAX_HEADERS`` is answered 431 and closed;
* a connection limit: beyond ``BSO_MAX_CONNECTIONS`` open connections a new one is
  answered 503 at once and closed, so the process keeps descriptors for the others.

Every refusal carries ``Connection: close``. The limits are read once per process
from the environment (``bso serve`` hands its settings down to its workers).
"""

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from infrastructure.settings import Settings

# Heads past their deadline are found by one sweep per process every CHECK_SECONDS (a timer
# per request would leave a cancelled timer in the event loop's heap for each one; see
# api/http/body_deadlines.py), so a stalled head is cut between its timeout and that later.
CHECK_SECONDS = 0.5

# A refused connection is closed after its answer, once the client has had this long to
# send what it was sending (closing at once may turn unread bytes into a reset that
# destroys the answer before the client reads it).
LINGER_SECONDS = 1.0


@functools.lru_cache(maxsize=1)
def limits() -> Settings:
    return Settings.from_env()


class _HeadTooLarge(Exception):
    pass


class _HeadDeadlines:
    """The deadlines of heads being read in this process, and the sweep that enforces them."""

    def __init__(self) -> None:
        self.pending: dict["LimitedHttpToolsProtocol", float] = {}
        self._sweeping = False

    def add(self, protocol: "LimitedHttpToolsProtocol", deadline: float) -> None:
        self.pending[protocol] = deadline
        if not self._sweeping:
            self._sweeping = True
            protocol.loop.call_later(CHECK_SECONDS, self._sweep, protocol.loop)

    def discard(self, protocol: "LimitedHttpToolsProtocol") -> None:
        self.pending.pop(protocol, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for protocol, deadline in list(self.pending.items()):
            if deadline <= now:
                del self.pending[protocol]
                protocol._head_overdue()
        if self.pending:
            loop.call_later(CHECK_SECONDS, self._sweep, loop)
        else:
            self._sweeping = False


_deadlines = _HeadDeadlines()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = limits()
        self.head_timeout = settings.header_timeout_seconds
        self.max_head_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        self.max_connections = settings.max_connections
        self._head_bytes = 0  # received since the current head began (or the last body ended)
        self._head_started = False  # a byte of the current request's head has arrived
        self._in_body = False
        self._header_count = 0
        self._parsed_head = 0
        self._refusal: tuple[int, str] | None = None

    # -- connections ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(503, "Too many connections; retry later.", retry_after=True)
            return
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    # -- reading a head ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # answered already: the rest is discarded until the connection closes
        if not self._in_body:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refusal is None and not self._in_body and self._head_bytes > self.max_head_bytes:
            self._refuse(431, f"Request line and headers are larger than {self.max_head_bytes} bytes.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        self._header_count = 0
        self._parsed_head = 0
        if self not in _deadlines.pending:
            self._arm_head_deadline()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refusal = (431, f"More than {self.max_headers} header fields.")
            raise _HeadTooLarge  # stops the parser; uvicorn then calls send_400_response
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        """The head as parsed so far (one read may hold all of it, which the count of bytes
        received in ``data_received`` cannot tell from a body)."""
        self._parsed_head += size
        if self._parsed_head > self.max_head_bytes:
            self._refusal = (431, f"Request line and headers are larger than {self.max_head_bytes} bytes.")
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        self._head_started = False
        self._in_body = True
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._head_bytes = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:  # our limit stopped the parser, not a malformed request
            status, text = self._refusal
            self._refusal = None
            self._refuse(status, text)
            return
        super().send_400_response(msg)

    # -- deadlines and refusals ---------------------------------------------------------------

    def _arm_head_deadline(self) -> None:
        _deadlines.add(self, self.loop.time() + self.head_timeout)

    def _disarm_head_deadline(self) -> None:
        _deadlines.discard(self)

    def _head_overdue(self) -> None:
        if self.transport.is_closing() or self._refusal is not None:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered: its next head gets its own deadline
        if not self._head_started:
            self.transport.close()  # nothing sent: nothing to answer
            return
        self._refuse(408, f"Request line and headers not received within {self.head_timeout:g} seconds.")

    def _refuse(self, status: int, text: str, retry_after: bool = False) -> None:
        self._disarm_head_deadline()
        self._refusal = (status, text)
        body = text.encode()
        head = [
            STATUS_LINE[status],
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n",
        ]
        if retry_after:
            head.append(b"retry-after: 5\r\n")
        self.transport.write(b"".join([*head, b"\r\n", body]))
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer is complete; keep reading (and discarding) a moment
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()
