"""A minimal keep-alive HTTP/1.1 client for load generation on the server's own machine.

httpx spends about a millisecond of CPU per request; with 16 trainer threads on a
2-core machine that is half a core taken from the server being measured. This
client speaks just enough HTTP/1.1 (one persistent connection, Content-Length
bodies, no Content-Type, as Zeus's client sends) to cost a small fraction of that.
It offers the ``get``/``post``/``patch`` subset of httpx.Client that the
benchmarks use, so either can drive the same trainer code.
"""

import json
import socket
from typing import Any
from urllib.parse import urlencode, urlsplit


class RawResponse:
    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.content = body

    def json(self) -> Any:
        return json.loads(self.content)


class RawClient:
    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.timeout = timeout
        self._socket: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def get(self, path: str, params: dict[str, Any] | None = None) -> RawResponse:
        return self.request("GET", f"{path}?{urlencode(params)}" if params else path)

    def post(self, path: str, content: str | bytes = b"", json: Any = None) -> RawResponse:
        return self.request("POST", path, _body(content, json))

    def patch(self, path: str, content: str | bytes = b"") -> RawResponse:
        return self.request("PATCH", path, _body(content, None))

    def request(self, method: str, path: str, body: bytes = b"") -> RawResponse:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n\r\n"
        connection = self._connection()
        connection.sendall(head.encode() + body)
        return self._read_response(connection)

    def _connection(self) -> socket.socket:
        if self._socket is None:
            self._socket = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer = b""
        return self._socket

    def _read_response(self, connection: socket.socket) -> RawResponse:
        while b"\r\n\r\n" not in self._buffer:
            self._receive(connection)
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            self._receive(connection)
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return RawResponse(status, body)

    def _receive(self, connection: socket.socket) -> None:
        chunk = connection.recv(65536)
        if not chunk:
            self.close()
            raise ConnectionError("server closed the connection mid-response")
        self._buffer += chunk


def _body(content: str | bytes, document: Any) -> bytes:
    if document is not None:
        return json.dumps(document).encode()
    return content.encode() if isinstance(content, str) else content
