"""``GET /openapi.json``: an OpenAPI 3.1 document of every route, built once per process.

Request and response bodies come from the pydantic models the routes validate
with, so the document cannot drift from what the server accepts.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.http.audit_routes import ReanalysisKnobs
from api.http.schemas import ErrorMessage, JobSpecFromClient, ReportResponse, TrainingResult, TrialId

_MODELS: list[type[BaseModel]] = [
    JobSpecFromClient,
    TrialId,
    TrainingResult,
    ReportResponse,
    ReanalysisKnobs,
    ErrorMessage,
]
_JSON = "application/json"


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {_JSON: {"schema": _ref(model)}}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = {_JSON: {"schema": schema}}
    return answer


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "bad operation (e.g. unknown job or trial)",
        401: "missing or wrong bearer token (when BSO_AUTH_TOKEN is set)",
        404: "not found",
        409: "conflict (spec mismatch, no converged size, abandoned trial, retries exhausted)",
        413: "request body too large",
        422: "invalid request: detail names each field",
    }
    return {str(code): _ok(meaning[code], _ref(ErrorMessage)) for code in codes}


def _query(name: str, description: str, required: bool = False, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": kind},
    }


_JOB_ID_PATH = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "client job id (latest incarnation) or job UUID",
}
_JOB_ID_QUERY = _query("job_id", "the job's id", required=True)
_JSON_OBJECT = {"type": "object"}
_MOMENT = [
    _query("version", "right after this event number", kind="integer"),
    _query("at", "as it was at this ISO-8601 instant (no zone: UTC)"),
]
# The pages hold no data (it comes from /v1 reads), so they need no token.
_HTML_PAGE = {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}


def _paths() -> dict[str, Any]:
    return {
        "/jobs": {
            "post": {
                "summary": "Register a job (Zeus)",
                "requestBody": _body(JobSpecFromClient),
                "responses": {
                    "201": _ok("registered", _ref(JobSpecFromClient)),
                    "200": _ok("already registered with this spec", _ref(JobSpecFromClient)),
                    **_errors(401, 409, 413, 422),
                },
            },
            "delete": {
                "summary": "Delete a job; its history stays readable (Zeus)",
                "parameters": [_JOB_ID_QUERY],
                "responses": {"200": _ok("deleted"), **_errors(401, 404, 422)},
            },
        },
        "/jobs/batch_size": {
            "get": {
                "summary": "Dispatch a trial: which batch size to train with (Zeus)",
                "parameters": [_JOB_ID_QUERY],
                "responses": {"200": _ok("the trial", _ref(TrialId)), **_errors(400, 401, 409, 422)},
            },
        },
        "/report": {
            "post": {
                "summary": "Report an epoch's cumulative time, energy and metric (Zeus)",
                "requestBody": _body(TrainingResult),
                "responses": {
                    "200": _ok("whether to stop", _ref(ReportResponse)),
                    **_errors(400, 401, 409, 413, 422),
                },
            },
        },
        "/trials": {
            "patch": {
                "summary": "End a trial; a running one becomes Failed (Zeus)",
                "requestBody": _body(TrialId),
                "responses": {"200": _ok("ended"), **_errors(401, 404, 413, 422)},
            },
        },
        "/v1/jobs": {
            "get": {
                "summary": "List jobs, deleted ones too",
                "parameters": [
                    _query("prefix", "job ids starting with this"),
                    _query("limit", "page size", kind="integer"),
                    _query("after", "cursor from next_after", kind="integer"),
                ],
                "responses": {"200": _ok("a page of jobs", _JSON_OBJECT), **_errors(401, 422)},
            },
        },
        "/v1/jobs/{job_id}": {
            "get": {
                "summary": "A job's current state",
                "parameters": [_JOB_ID_PATH],
                "responses": {"200": _ok("the state", _JSON_OBJECT), **_errors(401, 404)},
            },
        },
        "/v1/jobs/{job_id}/state": {
            "get": {
                "summary": "A job's state right after event N or at an instant",
                "parameters": [_JOB_ID_PATH, *_MOMENT],
                "responses": {"200": _ok("the state then", _JSON_OBJECT), **_errors(401, 404, 422)},
            },
        },
        "/v1/jobs/{job_id}/trials": {
            "get": {
                "summary": "Every trial of a job, now or as it was at a past version or instant",
                "parameters": [
                    _JOB_ID_PATH,
                    *_MOMENT,
                    _query("why", "true: each trial's recorded reason too (without generator states)", kind="boolean"),
                    _query("kind", "only trials of this kind: Exploration, Concurrent or MAB"),
                    _query("after", "only trials numbered after this", kind="integer"),
                    _query("limit", "at most this many trials (default all)", kind="integer"),
                ],
                "responses": {"200": _ok("the trials", _JSON_OBJECT), **_errors(401, 404, 422)},
            },
        },
        "/v1/jobs/{job_id}/trials.csv": {
            "get": {
                "summary": "Every trial as one CSV row (the columns of api/trial_table.py)",
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
            "get": {
                "summary": "One trial, its telemetry and why it got its batch size",
                "parameters": [
                    _JOB_ID_PATH,
                    {"name": "number", "in": "path", "required": True, "schema": {"type": "integer"}},
                ],
                "responses": {"200": _ok("the trial", _JSON_OBJECT), **_errors(401, 404, 422)},
            },
        },
        "/v1/jobs/{job_id}/events": {
            "get": {
                "summary": "A job's events in order",
                "parameters": [
                    _JOB_ID_PATH,
                    _query("after", "version", kind="integer"),
                    _query("limit", "page size", kind="integer"),
                ],
                "responses": {"200": _ok("a page of events", _JSON_OBJECT), **_errors(401, 404, 422)},
            },
        },
        "/v1/jobs/{job_id}/reanalysis": {
            "post": {
                "summary": "Replay the job's history under other knobs (writes nothing)",
                "parameters": [_JOB_ID_PATH],
                "requestBody": {"required": False, "content": {_JSON: {"schema": _ref(ReanalysisKnobs)}}},
                "responses": {
                    "200": _ok("actual vs counterfactual", _JSON_OBJECT),
                    **_errors(401, 404, 413, 422),
                },
            },
        },
        "/metrics": {
            "get": {
                "summary": "Conflict counters of this worker (Prometheus text)",
                "responses": {"200": {"description": "text/plain; version=0.0.4"}, **_errors(401)},
            }
        },
        "/healthz": {"get": {"summary": "The process is up", "responses": {"200": _ok("up", _JSON_OBJECT)}}},
        "/readyz": {
            "get": {
                "summary": "The event store answers",
                "responses": {"200": _ok("ready", _JSON_OBJECT), "503": _ok("store unreachable")},
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _ok("OpenAPI 3.1", _JSON_OBJECT)}}
        },
        "/": {"get": {"summary": "The dashboard: the job list", "responses": {"200": _HTML_PAGE}}},
        "/ui/jobs/{job_id}": {
            "get": {
                "summary": "The dashboard: one job's charts, trials, time travel and what-if",
                "parameters": [_JOB_ID_PATH],
                "responses": {"200": _HTML_PAGE},
            }
        },
        "/docs": {"get": {"summary": "This document, rendered by Swagger UI", "responses": {"200": _HTML_PAGE}}},
    }


def build_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "bso: event-sourced batch size optimizer", "version": _package_version()},
        "paths": _paths(),
        "components": {"schemas": schemas},
    }


def _package_version() -> str:
    try:
        return version("bso")
    except PackageNotFoundError:
        return "unknown"


_DOCUMENT = build_document()


async def openapi(request: Request) -> Response:
    return JSONResponse(_DOCUMENT)


routes = [Route("/openapi.json", openapi, methods=["GET"])]
