"""JSON answers written by the service's one JSON rule (``api.json_text``)."""

from typing import Any

from starlette.responses import JSONResponse

from api.json_text import finite_json


class FiniteJSONResponse(JSONResponse):
    """A JSON answer in which a non-finite number is ``null``: never a render failure, never invalid JSON."""

    def render(self, content: Any) -> bytes:
        return finite_json(content).encode("utf-8")
