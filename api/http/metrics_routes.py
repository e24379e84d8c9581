"""``GET /metrics``: the whole server's metrics in Prometheus text format (see api/http/metrics.py)."""

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.http.metrics import CONTENT_TYPE, render
from application.audit import JobAudit


async def metrics(request: Request) -> Response:
    audit: JobAudit = request.app.state.audit
    jobs_by_stage = await run_in_threadpool(audit.catalog.count_by_stage)
    stopped_in_a_row = await run_in_threadpool(audit.catalog.count_stopped_in_a_row)
    return Response(render(jobs_by_stage, stopped_in_a_row), media_type=CONTENT_TYPE)


routes = [Route("/metrics", metrics, methods=["GET"])]
