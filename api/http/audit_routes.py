"""Read, audit and reanalysis routes under ``/v1`` (no overlap with Zeus's paths).

``{job_id}`` is a client job id (its latest incarnation, deleted or not) or a Job
aggregate UUID from the listing (that incarnation exactly).
"""

from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from api.http import metrics
from api.http.errors import NotFoundError, RequestError
from api.http.requests import parse_body
from application.audit import AuditNotFoundError, JobAudit, parse_instant
from application.reanalysis import reanalyze
from domain.spec import KNOBS, knob_overrides

MAX_PAGE = 1000


class _KnobsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    def overrides(self) -> dict[str, Any]:
        given = self.model_dump(include=self.model_fields_set - {"resample_seed"})
        return knob_overrides(given)


# The body of a reanalysis: every knob of domain.spec.KNOBS, optional, plus the resampling seed.
ReanalysisKnobs = create_model(
    "ReanalysisKnobs",
    __base__=_KnobsBody,
    __doc__="The knobs a reanalysis may change; unset knobs keep the job's values, and the "
    "resulting job must obey the registration rules.",
    resample_seed=(int, Field(default=0, description="seed for drawing recorded runs of other sizes")),
    **{
        knob.name: (knob.type | None, Field(default=None, description=knob.help + (f"; null: {knob.null_means}" if knob.null_means else "")))
        for knob in KNOBS
    },
)


def audit_of(request: Request) -> JobAudit:
    return request.app.state.audit


def _invalid(field: str, text: str) -> RequestError:
    return RequestError(422, f"Invalid request: {field}: {text}", [{"field": field, "message": text, "type": "value_error"}])


def query_int(request: Request, name: str, default: int | None, minimum: int, maximum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(f"query.{name}", f"must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise _invalid(f"query.{name}", f"must be {bounds}, got {value}")
    return value


def query_instant(request: Request) -> datetime | None:
    raw = request.query_params.get("at")
    if raw is None:
        return None
    try:
        return parse_instant(raw)
    except ValueError:
        raise _invalid("query.at", f"must be an ISO-8601 instant such as 2024-05-01T12:00:00Z, got {raw!r}") from None


def path_trial_number(request: Request) -> int:
    raw = request.path_params["number"]
    if not raw.isdigit() or int(raw) < 1:
        raise _invalid("path.number", f"must be a positive integer, got {raw!r}")
    return int(raw)


async def _answer(query: Callable[[], Any]) -> Response:
    try:
        return JSONResponse(await run_in_threadpool(query))
    except AuditNotFoundError as error:
        raise NotFoundError(str(error)) from None


async def list_jobs(request: Request) -> Response:
    audit = audit_of(request)
    prefix = request.query_params.get("prefix", "")
    limit = query_int(request, "limit", 50, 1, MAX_PAGE)
    after = query_int(request, "after", 0, 0)
    return await _answer(lambda: audit.list_jobs(prefix, after, limit))


async def show_job(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    return await _answer(lambda: audit.state(job_id))


async def job_state(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    version = query_int(request, "version", None, 1)
    at = query_instant(request)
    if version is not None and at is not None:
        raise _invalid("query", "give either version or at, not both")
    return await _answer(lambda: audit.state(job_id, version, at))


async def list_trials(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    return await _answer(lambda: {"trials": audit.trials(job_id)})


async def show_trial(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    number = path_trial_number(request)
    return await _answer(lambda: audit.trial(job_id, number))


async def list_events(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    after = query_int(request, "after", 0, 0)
    limit = query_int(request, "limit", 100, 1, MAX_PAGE)
    return await _answer(lambda: audit.events(job_id, after, limit))


async def run_reanalysis(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    knobs = await parse_body(request, ReanalysisKnobs, request.app.state.settings.max_body_bytes)
    limits = request.app.state.optimizer.spec_limits
    answer = await _answer(
        lambda: reanalyze(audit.domain_events(job_id), knobs.overrides(), knobs.resample_seed, limits=limits)
    )
    metrics.REANALYSES.inc()
    return answer


def _route(path: str, endpoint: Callable[[Request], Awaitable[Response]], method: str = "GET") -> Route:
    return Route(path, endpoint, methods=[method])


routes = [
    Mount(
        "/v1",
        routes=[
            _route("/jobs", list_jobs),
            _route("/jobs/{job_id}", show_job),
            _route("/jobs/{job_id}/state", job_state),
            _route("/jobs/{job_id}/trials", list_trials),
            _route("/jobs/{job_id}/trials/{number}", show_trial),
            _route("/jobs/{job_id}/events", list_events),
            _route("/jobs/{job_id}/reanalysis", run_reanalysis, "POST"),
        ],
    )
]
