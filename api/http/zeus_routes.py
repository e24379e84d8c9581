"""The five routes of Zeus's batch size optimizer server, same paths, bodies and answers."""

from typing import Any, Awaitable, Callable, Mapping

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.http.auth import authorize_job
from api.http.errors import NotFoundError, RequestError
from api.http.requests import parse_body, query_job_id
from api.http.schemas import JobSpecFromClient, TrainingResult, TrialId
from application.idempotency import MAX_KEY_LENGTH, RequestKey
from application.service import BatchSizeOptimizer
from domain.errors import UnknownJobError


def optimizer(request: Request) -> BatchSizeOptimizer:
    return request.app.state.optimizer


def body_limit(request: Request) -> int:
    return request.app.state.settings.max_body_bytes


def request_key(request: Request, scope: str, body: BaseModel | Mapping[str, Any]) -> RequestKey | None:
    """The request's ``Idempotency-Key`` header, if any, bound to this job, route and body
    (a parsed body is dumped only when there is a key: most requests carry none)."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH:
        raise RequestError(422, f"Invalid request: header.Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    fields = body.model_dump() if isinstance(body, BaseModel) else body
    return RequestKey.of(scope, f"{request.method} {request.url.path}", key, fields)


async def register_job(request: Request) -> Response:
    spec = await parse_body(request, JobSpecFromClient, body_limit(request))
    # A generated id is the prefix, a dash and hex digits: the token must cover that.
    authorize_job(request, spec.job_id or f"{spec.job_id_prefix}-")
    body = spec.model_dump()
    key = request_key(request, spec.job_id or spec.job_id_prefix, body)
    created, registered = await run_in_threadpool(optimizer(request).register_job, body, key)
    return JSONResponse(registered, status_code=201 if created else 200)


async def predict(request: Request) -> Response:
    job_id = query_job_id(request)
    authorize_job(request, job_id)
    key = request_key(request, job_id, {"job_id": job_id})
    trial = await run_in_threadpool(optimizer(request).predict, job_id, key)
    return JSONResponse(trial)


async def report(request: Request) -> Response:
    result = await parse_body(request, TrainingResult, body_limit(request))
    authorize_job(request, result.job_id)
    key = request_key(request, result.job_id, result)
    answer = await run_in_threadpool(optimizer(request).report, result.job_id, result.epoch_report(), key)
    return JSONResponse(answer)


async def end_trial(request: Request) -> Response:
    trial = await parse_body(request, TrialId, body_limit(request))
    authorize_job(request, trial.job_id)
    key = request_key(request, trial.job_id, trial)
    try:
        status = await run_in_threadpool(
            optimizer(request).end_trial, trial.job_id, trial.trial_number, trial.batch_size, key
        )
    except UnknownJobError:
        raise NotFoundError(f"Could not find the trial: job {trial.job_id} is unknown") from None
    # Zeus's client ignores this body; people and scripts learn what became of the trial.
    return JSONResponse({**trial.model_dump(), "status": status})


async def delete_job(request: Request) -> Response:
    job_id = query_job_id(request)
    authorize_job(request, job_id)
    key = request_key(request, job_id, {"job_id": job_id})
    try:
        await run_in_threadpool(optimizer(request).delete_job, job_id, key)
    except UnknownJobError:
        raise NotFoundError(f"No job was deleted: job {job_id} is unknown") from None
    return JSONResponse({"job_id": job_id, "deleted": True})  # Zeus's client never calls this route


def get_without_head(path: str, endpoint: Callable[[Request], Awaitable[Response]]) -> Route:
    """A GET route that changes state: Starlette would answer HEAD by running it, so HEAD is a 405."""
    route = Route(path, endpoint, methods=["GET"])
    route.methods = {"GET"}
    return route


async def jobs(request: Request) -> Response:
    """POST and DELETE /jobs: one route, so that a 405 on /jobs lists both in Allow."""
    return await (register_job if request.method == "POST" else delete_job)(request)


routes = [
    Route("/jobs", jobs, methods=["POST", "DELETE"]),
    get_without_head("/jobs/batch_size", predict),  # Zeus's predict is a GET; it dispatches a trial
    Route("/report", report, methods=["POST"]),
    Route("/trials", end_trial, methods=["PATCH"]),
]
