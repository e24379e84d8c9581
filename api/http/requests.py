"""Reading request bodies and query parameters the way Zeus's client sends them."""

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from api.http.errors import RequestError, validation_failed

Model = TypeVar("Model", bound=BaseModel)


async def parse_body(request: Request, model: type[Model], max_bytes: int) -> Model:
    """Parse a JSON body whatever its Content-Type (Zeus's client sends none)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestError(413, f"Request body is larger than {max_bytes} bytes")
    timeout = request.app.state.settings.body_timeout_seconds
    raw = bytearray()
    # A client that stops sending half-way must not hold its connection (and this task) forever.
    try:
        async with request.app.state.body_deadlines.within(timeout):
            async for chunk in request.stream():
                raw.extend(chunk)
                if len(raw) > max_bytes:
                    raise RequestError(413, f"Request body is larger than {max_bytes} bytes")
    except TimeoutError:
        raise RequestError(
            408, f"Request body not received within {timeout:g} seconds", headers={"Connection": "close"}
        ) from None
    if not raw.strip():
        return validate(model, {})  # no body: every field takes its default or is reported missing
    try:
        data: Any = json.loads(bytes(raw))
    except RecursionError:
        raise RequestError(422, "Request body is nested too deeply to be read as JSON") from None
    except ValueError as error:  # invalid JSON, bad UTF-8, or an integer beyond Python's digit limit
        raise RequestError(422, f"Request body is not valid JSON: {error}") from None
    return validate(model, data)


def validate(model: type[Model], data: Any) -> Model:
    if not isinstance(data, dict):
        raise RequestError(422, "Request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_failed(error) from None


def query_job_id(request: Request) -> str:
    job_id = request.query_params.get("job_id")
    if not job_id:
        raise RequestError(
            422,
            "Invalid request: query.job_id: Field required",
            [{"field": "query.job_id", "message": "Field required", "type": "missing"}],
        )
    return job_id
