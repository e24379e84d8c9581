"""Read, audit and reanalysis routes under ``/v1`` (no overlap with Zeus's paths).

``{job_id}`` is a client job id (its latest incarnation, deleted or not) or a Job
aggregate UUID from the listing (that incarnation exactly).
"""

import re
import threading
from datetime import datetime
from typing import Any, Awaitable, Callable
from uuid import UUID

from anyio import CapacityLimiter, to_thread
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from api.http import metrics
from api.http.auth import authorize_job, may_write, principal_of
from api.http.errors import NotFoundError, RequestError
from api.http.requests import parse_body
from api.http.view_cache import RenderedViews
from api.json_text import finite_json
from api.numbers import MAX_NUMBER, parse_number
from application.audit import SORTABLE, AuditNotFoundError, JobAudit, JobFilters, parse_instant
from api.trial_table import trial_rows, trials_csv
from application.reanalysis import reanalyze
from domain.enums import TrialKind
from domain.spec import FIELD_BOUNDS, KNOBS, knob_overrides

MAX_PAGE = 1000
TRIAL_KINDS = tuple(TrialKind)
# The instants ``?at=`` accepts (the OpenAPI document states the same pattern): no zone means UTC.
INSTANT_PATTERN = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?"
INSTANT = re.compile(INSTANT_PATTERN, re.ASCII)
RETRY_REANALYSIS_AFTER_SECONDS = 5
# What lets a reader predict a job's next random draws: shown only to callers allowed to write.
SECRET_FIELDS = frozenset({"seed", "mab_seed", "generator_state", "generator_state_before", "generator_state_after"})


class _KnobsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, data: Any) -> Any:
        """Lax parsing would read true as 1: a number knob must be given as a number."""
        if isinstance(data, dict):
            for setting in KNOBS:
                if setting.type is not bool and isinstance(data.get(setting.name), bool):
                    raise ValueError(f"{setting.name} must be a number, not {str(data[setting.name]).lower()}")
        return data

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
        knob.name: (
            knob.type | None,
            Field(
                default=None,
                description=knob.help + (f"; null: {knob.null_means}" if knob.null_means else ""),
                **FIELD_BOUNDS.get(knob.name, {}),
            ),
        )
        for knob in KNOBS
    },
)


def audit_of(request: Request) -> JobAudit:
    return request.app.state.audit


def _invalid(field: str, text: str) -> RequestError:
    return RequestError(422, f"Invalid request: {field}: {text}", [{"field": field, "message": text, "type": "value_error"}])


def query_int(request: Request, name: str, default: int | None, minimum: int, maximum: int = MAX_NUMBER) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:  # absent; an empty value is not a number (422), as the OpenAPI document says
        return default
    try:
        return parse_number(raw, minimum, maximum)
    except ValueError as error:
        raise _invalid(f"query.{name}", str(error)) from None


def query_instant(request: Request) -> datetime | None:
    raw = request.query_params.get("at")
    if raw is None:
        return None
    try:
        if not INSTANT.fullmatch(raw):
            raise ValueError(raw)
        return parse_instant(raw)
    except ValueError:
        raise _invalid("query.at", f"must be an ISO-8601 instant such as 2024-05-01T12:00:00Z, got {raw!r}") from None


def path_trial_number(request: Request) -> int:
    try:
        return parse_number(request.path_params["number"], 1)
    except ValueError as error:
        raise _invalid("path.number", str(error)) from None


def without_secrets(value: Any) -> Any:
    """``value`` without any field in SECRET_FIELDS, at any depth."""
    if isinstance(value, dict):
        return {key: without_secrets(item) for key, item in value.items() if key not in SECRET_FIELDS}
    if isinstance(value, list):
        return [without_secrets(item) for item in value]
    return value


async def read_off_the_command_threads(request: Request, query: Callable[[], Any]) -> Any:
    """Run a read on the reads' own threads, so that readers never queue trainers' commands."""
    limiter: CapacityLimiter = request.app.state.read_limiter
    try:
        return await to_thread.run_sync(query, limiter=limiter)
    except AuditNotFoundError as error:
        raise NotFoundError(str(error)) from None


def _renderer(request: Request, query: Callable[[], Any]) -> Callable[[], bytes]:
    show_secrets = may_write(request)

    def rendered() -> bytes:
        view = query()
        return finite_json(view if show_secrets else without_secrets(view)).encode("utf-8")

    return rendered


async def _answer(request: Request, query: Callable[[], Any]) -> Response:
    """The view as JSON, built and rendered on a read thread (a large view never stalls the event loop)."""
    body = await read_off_the_command_threads(request, _renderer(request, query))
    return Response(body, media_type="application/json")


async def _job_answer(request: Request, query: Callable[[], Any]) -> Response:
    """A view of one job, served from the rendered answers while the job's stream has not moved."""
    audit, reference = audit_of(request), request.path_params["job_id"]
    views: RenderedViews = request.app.state.rendered_views
    key = (request.url.path, request.url.query, may_write(request))
    render = _renderer(request, query)

    def cached() -> bytes:
        job_uuid = authorized_job(request, reference)
        return views.get_or_render(key, (job_uuid, audit.latest_version(job_uuid)), render)

    return Response(await read_off_the_command_threads(request, cached), media_type="application/json")


def authorized_job(request: Request, reference: str) -> UUID:
    """The job a reference names, if the caller's token covers it; else 403, said alike whether
    or not the job exists (a UUID is checked by the job id it belongs to)."""
    audit, principal = audit_of(request), principal_of(request)
    if principal.prefixes is None:
        return audit.resolve(reference)
    try:
        job_uuid = audit.resolve(reference)
        job_id = audit.current_state(job_uuid)["job_id"]
    except AuditNotFoundError:
        job_id = reference
    authorize_job(request, job_id)
    return job_uuid


async def list_jobs(request: Request) -> Response:
    audit = audit_of(request)
    prefix = request.query_params.get("prefix", "")
    limit = query_int(request, "limit", 50, 1, MAX_PAGE)
    after = query_int(request, "after", 0, 0)
    params = request.query_params
    filters = JobFilters(
        policy=params.get("policy") or None,
        gpu_model=params.get("gpu_model") or None,
        stage=params.get("stage") or None,
        prefixes=principal_of(request).prefixes,  # a scoped token lists its own jobs only
    )
    sort = params.get("sort") or None
    if sort is not None and sort.removeprefix("-") not in SORTABLE:
        raise _invalid("query.sort", f"must be a column ({', '.join(SORTABLE)}), '-' before it for descending; got {sort!r}")
    return await _answer(request, lambda: audit.list_jobs(prefix, after, limit, filters, sort))


async def job_summary(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    return await _job_answer(request, lambda: audit.summary(job_id))


async def fleet_summary(request: Request) -> Response:
    prefixes = principal_of(request).prefixes
    return await _answer(request, lambda: audit_of(request).fleet_summary(prefixes))


async def show_job(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    return await _job_answer(request, lambda: audit.state(job_id))


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


def query_kind(request: Request) -> str | None:
    kind = request.query_params.get("kind") or None
    if kind is not None and kind not in TRIAL_KINDS:
        raise _invalid("query.kind", f"must be one of {', '.join(TRIAL_KINDS)}, got {kind!r}")
    return kind


async def job_state(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    version, at = query_moment(request)
    return await _job_answer(request, lambda: audit.state(job_id, version, at))


async def list_trials(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    version, at = query_moment(request)
    why, kind = query_flag(request, "why"), query_kind(request)
    after = query_int(request, "after", 0, 0)
    limit = query_int(request, "limit", 100, 1, MAX_PAGE)
    return await _job_answer(request, lambda: audit.trials_page(job_id, version, at, why, kind, after, limit))


async def trials_table(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    version, at = query_moment(request)
    show_secrets = may_write(request)

    def table() -> str:
        authorized_job(request, job_id)
        rows = audit.trials(job_id, version, at, why=True)
        return trials_csv(trial_rows(rows if show_secrets else without_secrets(rows)))

    text = await read_off_the_command_threads(request, table)
    return Response(text, media_type="text/csv; charset=utf-8")


async def show_trial(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    number = path_trial_number(request)
    return await _job_answer(request, lambda: audit.trial(job_id, number))


async def list_events(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    after = query_int(request, "after", 0, 0)
    limit = query_int(request, "limit", 100, 1, MAX_PAGE)
    return await _job_answer(request, lambda: audit.events(job_id, after, limit))


async def run_reanalysis(request: Request) -> Response:
    audit, job_id = audit_of(request), request.path_params["job_id"]
    knobs = await parse_body(request, ReanalysisKnobs, request.app.state.settings.max_body_bytes)
    await read_off_the_command_threads(request, lambda: authorized_job(request, job_id))
    slots: threading.Semaphore = request.app.state.reanalysis_slots
    if not slots.acquire(blocking=False):
        raise RequestError(
            503,
            "Too many reanalyses are running in this server process; retry later",
            headers={"Retry-After": str(RETRY_REANALYSIS_AFTER_SECONDS)},
        )
    limits = request.app.state.optimizer.spec_limits
    try:
        events = await read_off_the_command_threads(request, lambda: audit.domain_events(job_id))
        answer = await _answer(request, lambda: reanalyze(events, knobs.overrides(), knobs.resample_seed, limits=limits))
    finally:
        slots.release()
    metrics.REANALYSES.inc()
    return answer


def _route(path: str, endpoint: Callable[[Request], Awaitable[Response]], method: str = "GET") -> Route:
    return Route(path, endpoint, methods=[method])


routes = [
    Mount(
        "/v1",
        routes=[
            _route("/jobs", list_jobs),
            _route("/summary", fleet_summary),
            _route("/jobs/{job_id}", show_job),
            _route("/jobs/{job_id}/summary", job_summary),
            _route("/jobs/{job_id}/state", job_state),
            _route("/jobs/{job_id}/trials", list_trials),
            _route("/jobs/{job_id}/trials.csv", trials_table),
            _route("/jobs/{job_id}/trials/{number}", show_trial),
            _route("/jobs/{job_id}/events", list_events),
            _route("/jobs/{job_id}/reanalysis", run_reanalysis, "POST"),
        ],
    )
]
