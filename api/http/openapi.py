"""``GET /openapi.json``: an OpenAPI 3.1 document of every route, built once per process.

Request and response bodies come from the pydantic models the routes validate
with, so the document cannot drift from what the server accepts.
"""

from functools import cache
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.http.audit_routes import INSTANT_PATTERN, MAX_PAGE, ReanalysisKnobs
from api.http.schemas import ErrorMessage, JobSpecFromClient, ReportResponse, TrainingResult, TrialId
from api.version import package_version
from api.http.view_schemas import (
    VIEW_MODELS,
    EventPage,
    FleetSummary,
    JobPage,
    JobState,
    JobSummary,
    ReanalysisReport,
    Status,
    TrialDetail,
    TrialPage,
)
from application.audit import SORTABLE
from api.numbers import MAX_NUMBER
from application.idempotency import MAX_KEY_LENGTH
from domain.enums import TrialKind
from domain.spec import SpecLimits
from infrastructure.settings import Settings

_MODELS: list[type[BaseModel]] = [
    JobSpecFromClient,
    TrialId,
    TrainingResult,
    ReportResponse,
    ReanalysisKnobs,
    ErrorMessage,
    *VIEW_MODELS,
]
_JSON = "application/json"
# Who may call an operation; ``_enforced`` turns each into the security this server enforces.
_WRITE = "write"  # changes state: needs a token that may write, when writes need one
_READ = "read"  # reads: needs a token when reads need one
_OPEN = "open"  # health checks, pages and their files: never a token


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {_JSON: {"schema": _ref(model)}}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = {_JSON: {"schema": schema}}
    return answer


_ERROR_MEANINGS = {
    400: "bad operation (e.g. unknown job, or a trial number or batch size never dispatched)",
    401: "missing or wrong bearer token (only when a token is configured)",
    404: "not found",
    405: "method not allowed; the Allow header lists the allowed ones",
    408: "request body not received within BSO_BODY_TIMEOUT_SECONDS",
    409: "conflict (spec mismatch, no converged size, abandoned trial, reused idempotency key, retries exhausted)",
    413: "request body larger than BSO_MAX_BODY_BYTES",
    422: "invalid request: the message (and detail) name each field at fault",
    503: "too many reanalyses running in this process: retry after Retry-After seconds",
}


def _errors(*codes: int) -> dict[str, Any]:
    answers = {str(code): _ok(_ERROR_MEANINGS[code], _ref(ErrorMessage)) for code in codes}
    if "401" in answers:
        answers["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    if "503" in answers:
        answers["503"]["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return answers


def _query(name: str, description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _count(minimum: int, maximum: int = MAX_NUMBER) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


_JOB_ID_PATH = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
    "description": "client job id (latest incarnation) or job UUID",
}
_DELETED = {
    "type": "object",
    "properties": {"job_id": {"type": "string"}, "deleted": {"type": "boolean", "const": True}},
    "required": ["job_id", "deleted"],
}
_ENDED = {
    "type": "object",
    "properties": {
        "job_id": {"type": "string"},
        "batch_size": {"type": "integer"},
        "trial_number": {"type": "integer"},
        "status": {"type": ["string", "null"], "enum": ["Dispatched", "Succeeded", "Failed", None]},
    },
    "required": ["job_id", "batch_size", "trial_number", "status"],
}
_JOB_ID_QUERY = _query("job_id", "the job's id", {"type": "string", "minLength": 1}, required=True)
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "repeat a request safely: the same key and body get the first answer back",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
}
_MOMENT = [
    _query("version", "right after this event number", _count(1)),
    _query("at", "as it was at this ISO-8601 instant; no zone means UTC", {"type": "string", "format": "date-time", "pattern": f"^{INSTANT_PATTERN}$"}),
]
# The pages hold no data (it comes from /v1 reads), so they need no token.
_HTML_PAGE = {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
_AFTER = _query("after", "cursor: next_after of the previous page", _count(0))
_LIMIT = _query("limit", "page size", _count(1, MAX_PAGE))


def _write(summary: str, responses: dict[str, Any], **operation: Any) -> dict[str, Any]:
    parameters = operation.pop("parameters", [])
    return {"summary": summary, "security": _WRITE, "parameters": [*parameters, _IDEMPOTENCY_KEY], "responses": responses, **operation}


def _read(summary: str, model: type[BaseModel], codes: tuple[int, ...], **operation: Any) -> dict[str, Any]:
    return {"summary": summary, "security": _READ, "responses": {"200": _ok(summary, _ref(model)), **_errors(401, *codes)}, **operation}


def _paths() -> dict[str, Any]:
    return {
        "/jobs": {
            "post": _write(
                "Register a job (Zeus)",
                {
                    "201": _ok("registered", _ref(JobSpecFromClient)),
                    "200": _ok("already registered with this spec", _ref(JobSpecFromClient)),
                    **_errors(401, 408, 409, 413, 422),
                },
                requestBody=_body(JobSpecFromClient),
            ),
            "delete": _write(
                "Delete a job; its history stays readable (Zeus)",
                {"200": _ok("the job id and deleted: true", _DELETED), **_errors(401, 404, 409, 422)},
                parameters=[_JOB_ID_QUERY],
            ),
        },
        "/jobs/batch_size": {
            "get": _write(
                "Dispatch a trial: which batch size to train with (Zeus). It changes state: HEAD is a 405",
                {"200": _ok("the trial", _ref(TrialId)), **_errors(400, 401, 409, 422)},
                parameters=[_JOB_ID_QUERY],
            ),
        },
        "/report": {
            "post": _write(
                "Report an epoch's cumulative time, energy and metric (Zeus)",
                {"200": _ok("whether to stop", _ref(ReportResponse)), **_errors(400, 401, 408, 409, 413, 422)},
                requestBody=_body(TrainingResult),
            ),
        },
        "/trials": {
            "patch": _write(
                "End a trial; a running one becomes Failed (Zeus)",
                {
                    "200": _ok("the trial id and its status afterwards: Failed, or Succeeded if it had reported", _ENDED),
                    **_errors(400, 401, 404, 408, 409, 413, 422),
                },
                requestBody=_body(TrialId),
            ),
        },
        "/v1/jobs": {
            "get": _read(
                "A page of jobs, deleted ones too: in registration order (after: a cursor, next_after "
                "pages on), or sorted by a column (after: an offset, next_offset pages on)",
                JobPage,
                (422,),
                parameters=[
                    _query("prefix", "job ids starting with this", {"type": "string"}),
                    _query("policy", "only jobs of this policy", {"type": "string"}),
                    _query("gpu_model", "only jobs on this GPU model", {"type": "string"}),
                    _query("stage", "only jobs in this stage", {"type": "string"}),
                    _query("sort", "a column, '-' before it for descending", {"type": "string", "enum": [*SORTABLE, *(f"-{c}" for c in SORTABLE)]}),
                    _LIMIT,
                    _AFTER,
                ],
            ),
        },
        "/v1/summary": {"get": _read("Savings summed over every live job, overall and per GPU model", FleetSummary, ())},
        "/v1/jobs/{job_id}": {"get": _read("A job's current state", JobState, (404,), parameters=[_JOB_ID_PATH])},
        "/v1/jobs/{job_id}/summary": {
            "get": _read(
                "Which batch size to use now, whether the job has settled, and what it saved against its default",
                JobSummary,
                (404,),
                parameters=[_JOB_ID_PATH],
            ),
        },
        "/v1/jobs/{job_id}/state": {
            "get": _read(
                "A job's state right after event N or at an instant (give one, not both)",
                JobState,
                (404, 422),
                parameters=[_JOB_ID_PATH, *_MOMENT],
            ),
        },
        "/v1/jobs/{job_id}/trials": {
            "get": _read(
                "A page of a job's trials, now or as they were at a past version or instant",
                TrialPage,
                (404, 422),
                parameters=[
                    _JOB_ID_PATH,
                    *_MOMENT,
                    _query("why", "true: each trial's recorded reason too (without generator states)", {"type": "boolean"}),
                    _query("kind", "only trials of this kind", {"type": "string", "enum": [str(kind) for kind in TrialKind]}),
                    _AFTER,
                    _LIMIT,
                ],
            ),
        },
        "/v1/jobs/{job_id}/trials.csv": {
            "get": {
                "summary": "Every trial as one CSV row (the columns of api/trial_table.py)",
                "security": _READ,
                "parameters": [_JOB_ID_PATH, *_MOMENT],
                "responses": {
                    "200": {
                        "description": "header line, then one row per trial",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 404, 422),
                },
            },
        },
        "/v1/jobs/{job_id}/trials/{number}": {
            "get": _read(
                "One trial, its telemetry and why it got its batch size",
                TrialDetail,
                (404, 422),
                parameters=[
                    _JOB_ID_PATH,
                    {"name": "number", "in": "path", "required": True, "schema": _count(1)},
                ],
            ),
        },
        "/v1/jobs/{job_id}/events": {
            "get": _read(
                "A page of a job's events in order",
                EventPage,
                (404, 422),
                parameters=[_JOB_ID_PATH, _query("after", "version", _count(0)), _LIMIT],
            ),
        },
        "/v1/jobs/{job_id}/reanalysis": {
            "post": {
                "summary": "Replay the job's history under other knobs (writes nothing)",
                "security": _WRITE,
                "parameters": [_JOB_ID_PATH],
                "requestBody": _body(ReanalysisKnobs, required=False),
                "responses": {
                    "200": _ok("actual vs counterfactual", _ref(ReanalysisReport)),
                    **_errors(401, 404, 408, 413, 422, 503),
                },
            },
        },
        "/metrics": {
            "get": {
                "summary": "The metrics of every worker of this server (Prometheus text)",
                "security": _READ,
                "responses": {
                    "200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    **_errors(401),
                },
            }
        },
        "/healthz": {"get": {"summary": "The process is up", "security": _OPEN, "responses": {"200": _ok("up", _ref(Status))}}},
        "/readyz": {
            "get": {
                "summary": "The event store can be read",
                "security": _OPEN,
                "responses": {"200": _ok("ready", _ref(Status)), "503": _ok("store unreachable or unreadable", _ref(ErrorMessage))},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": _READ,
                "responses": {"200": _ok("OpenAPI 3.1", {"type": "object"}), **_errors(401)},
            }
        },
        "/": {"get": {"summary": "The dashboard: the job list", "security": _OPEN, "responses": {"200": _HTML_PAGE}}},
        "/ui/jobs/{job_id}": {
            "get": {
                "summary": "The dashboard: one job's charts, trials, time travel and what-if",
                "security": _OPEN,
                "parameters": [_JOB_ID_PATH],
                "responses": {"200": _HTML_PAGE},
            }
        },
        "/docs": {"get": {"summary": "This document, rendered by Swagger UI", "security": _OPEN, "responses": {"200": _HTML_PAGE}}},
    }


@cache
def build_document(settings: Settings) -> dict[str, Any]:
    """The document of what a server with these settings enforces: which operations need a
    token, and the bounds its caps (BSO_MAX_*) put on job specs and reanalysis knobs."""
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for name in ("JobSpecFromClient", "ReanalysisKnobs"):
        _cap(schemas[name]["properties"], settings.spec_limits)
    return {
        "openapi": "3.1.0",
        "info": {"title": "bso: event-sourced batch size optimizer", "version": package_version()},
        "paths": _enforced(_paths(), settings),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "BSO_AUTH_TOKEN (or a scoped token of BSO_TOKENS_FILE that may write) for "
                    "writes; for reads, when they need one, BSO_READ_TOKEN or any of those",
                }
            },
        },
    }


def _enforced(paths: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Each operation's security as this server enforces it (api/http/auth.py): a token only
    where one is required, and the answers that only then can come (401, 403)."""
    writes, reads = settings.writes_need_token, settings.reads_need_token
    read_only_tokens = bool(settings.read_token or settings.tokens_file)
    for path, operations in paths.items():
        for operation in operations.values():
            access = operation["security"]
            needed = {_WRITE: writes, _READ: reads, _OPEN: False}[access]
            operation["security"] = [{"bearer": []}] if needed else []
            responses = operation["responses"]
            if not needed:
                responses.pop("401", None)
            # A read-only token that writes, or a scoped token used on another team's job.
            scoped_job = settings.tokens_file and ("job_id" in path or path in _JOB_ROUTES)
            if needed and ((access == _WRITE and read_only_tokens) or scoped_job):
                responses["403"] = _ok(_FORBIDDEN, _ref(ErrorMessage))
    return paths


# Zeus's routes name their job in the body or the query rather than the path.
_JOB_ROUTES = frozenset({"/jobs", "/jobs/batch_size", "/report", "/trials"})
_FORBIDDEN = "the token may only read, or does not cover this job's id (said alike whether or not the job exists)"


def _cap(properties: dict[str, Any], limits: SpecLimits) -> None:
    """The caps of this server as the fields' bounds (they are refused beyond them)."""
    if "batch_sizes" in properties:
        properties["batch_sizes"]["maxItems"] = limits.batch_sizes
    for name, field in properties.items():
        cap = getattr(limits, name, None)
        if cap is None or name == "batch_sizes":
            continue
        for schema in field.get("anyOf", [field]):
            if "maximum" in schema:
                schema["maximum"] = min(schema["maximum"], cap)


async def openapi(request: Request) -> Response:
    return JSONResponse(build_document(request.app.state.settings))


routes = [Route("/openapi.json", openapi, methods=["GET"])]
