"""The five routes of Zeus's batch size optimizer server, same paths, bodies and answers."""

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.errors import NotFoundError
from api.requests import parse_body, query_job_id
from api.schemas import JobSpecFromClient, TrainingResult, TrialId
from application.service import BatchSizeOptimizer
from domain.errors import UnknownJobError


def optimizer(request: Request) -> BatchSizeOptimizer:
    return request.app.state.optimizer


def body_limit(request: Request) -> int:
    return request.app.state.settings.max_body_bytes


async def register_job(request: Request) -> Response:
    spec = await parse_body(request, JobSpecFromClient, body_limit(request))
    created, registered = await run_in_threadpool(optimizer(request).register_job, spec.model_dump())
    return JSONResponse(registered, status_code=201 if created else 200)


async def predict(request: Request) -> Response:
    job_id = query_job_id(request)
    trial = await run_in_threadpool(optimizer(request).predict, job_id)
    return JSONResponse(trial)


async def report(request: Request) -> Response:
    result = await parse_body(request, TrainingResult, body_limit(request))
    answer = await run_in_threadpool(
        optimizer(request).report,
        result.job_id,
        result.trial_number,
        result.batch_size,
        result.time,
        result.energy,
        result.metric,
        result.current_epoch,
    )
    return JSONResponse(answer)


async def end_trial(request: Request) -> Response:
    trial = await parse_body(request, TrialId, body_limit(request))
    try:
        await run_in_threadpool(optimizer(request).end_trial, trial.job_id, trial.trial_number, trial.batch_size)
    except UnknownJobError:
        raise NotFoundError(f"Could not find the trial: job {trial.job_id} is unknown") from None
    return JSONResponse(None)


async def delete_job(request: Request) -> Response:
    job_id = query_job_id(request)
    try:
        await run_in_threadpool(optimizer(request).delete_job, job_id)
    except UnknownJobError:
        raise NotFoundError(f"No job was deleted: job {job_id} is unknown") from None
    return JSONResponse(None)


routes = [
    Route("/jobs", register_job, methods=["POST"]),
    Route("/jobs", delete_job, methods=["DELETE"]),
    Route("/jobs/batch_size", predict, methods=["GET"]),
    Route("/report", report, methods=["POST"]),
    Route("/trials", end_trial, methods=["PATCH"]),
]
