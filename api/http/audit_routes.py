"""Read, audit and reanalysis routes under ``/v1`` (no overlap with Zeus's paths).

``{job_id}`` is a client job id (its latest incarnation, deleted or not) or a Job
aggregate UUID from the listing (that incarnation exactly).
"""

from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping

from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from api.http.errors import NotFoundError, RequestError
from api.http.requests import parse_body, validate
from api.http.schemas import JobSpecFromClient
from api.trial_table import trial_rows, trials_csv
from application.audit import AuditNotFoundError, JobAudit, parse_instant
from application.reanalysis import reanalyze
from domain.job import CONCURRENT, EXPLORATION, MAB_TRIAL

MAX_PAGE = 1000
TRIAL_KINDS = (EXPLORATION, CONCURRENT, MAB_TRIAL)


class ReanalysisKnobs(BaseModel):
    """The knobs a reanalysis may change; their ranges are the job spec's own (checked on the merge)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    eta_knob: float | None = None
    beta_knob: float | None = None
    window_size: int | None = None
    mab_prior_mean: float | None = None
    mab_prior_precision: float | None = None
    mab_num_explorations: int | None = None
    num_pruning_rounds: int | None = None
    mab_seed: int | None = None
    resample_seed: int = 0

    def overrides(self) -> dict[str, Any]:
        """Knobs the caller set; ``beta_knob: null`` disables early stopping, ``mab_seed: null`` keeps the seed."""
        given = self.model_dump(include=self.model_fields_set - {"resample_seed"})
        return {knob: value for knob, value in given.items() if value is not None or knob == "beta_knob"}


def checked_overrides(spec: Mapping[str, Any], knobs: ReanalysisKnobs) -> dict[str, Any]:
    """The overrides, after checking the resulting spec obeys the registration rules (422 if not)."""
    overrides = knobs.overrides()
    validate(JobSpecFromClient, {**spec, **overrides})
    return overrides


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


def _csv(text: str) -> Response:
    return PlainTextResponse(text, media_type="text/csv; charset=utf-8")


async def _answer(query: Callable[[], Any], respond: Callable[[Any], Response] = JSONResponse) -> Response:
    try:
        return respond(await run_in_threadpool(query))
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


def query_moment(request: Request) -> tuple[int | None, datetime | None]:
    """``version`` or ``at`` (at most one): which past moment of the job to show."""
    version = query_int(request, "version", None, 1)
    at = query_instant(request)
    if version is not None and at is not None:
        raise _invalid("query", "give either version or at, not both")
    return version, at


def query_flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise _invalid(f"query.{name}", f"must be true or false, got {raw!r}")
    return raw in ("true", "1")


async def job_state(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    version, at = query_moment(request)
    return await _answer(lambda: audit.state(job_id, version, at))


def query_kind(request: Request) -> str | None:
    kind = request.query_params.get("kind") or None
    if kind is not None and kind not in TRIAL_KINDS:
        raise _invalid("query.kind", f"must be one of {', '.join(TRIAL_KINDS)}, got {kind!r}")
    return kind


async def list_trials(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    version, at = query_moment(request)
    why, kind = query_flag(request, "why"), query_kind(request)
    after, limit = query_int(request, "after", 0, 0), query_int(request, "limit", None, 1)
    return await _answer(lambda: {"trials": audit.trials(job_id, version, at, why, kind, after, limit)})


async def trials_table(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    version, at = query_moment(request)
    return await _answer(lambda: trials_csv(trial_rows(audit.trials(job_id, version, at, why=True))), _csv)


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
    try:
        events = await run_in_threadpool(audit.domain_events, job_id)
    except AuditNotFoundError as error:
        raise NotFoundError(str(error)) from None
    overrides = checked_overrides(events[0].spec, knobs)
    return await _answer(lambda: reanalyze(events, overrides, knobs.resample_seed))


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
            _route("/jobs/{job_id}/trials.csv", trials_table),
            _route("/jobs/{job_id}/trials/{number}", show_trial),
            _route("/jobs/{job_id}/events", list_events),
            _route("/jobs/{job_id}/reanalysis", run_reanalysis, "POST"),
        ],
    )
]
