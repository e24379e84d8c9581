"""The dashboard (``GET /``, ``GET /ui/jobs/{job_id}``), the API docs page (``GET /docs``) and their static files.

The pages are plain HTML, CSS and JavaScript over the ``/v1`` JSON routes, with
Chart.js and Swagger UI vendored under ``static/vendor`` (see its README), so they
work offline and need no build step. They hold no job data, so they are served
without a token; every datum they show comes from a ``/v1`` read, which asks for
one when ``BSO_AUTH_READS`` is on.
"""

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
DASHBOARD_PAGE = STATIC_DIR / "dashboard" / "index.html"
DOCS_PAGE = STATIC_DIR / "docs" / "index.html"
# Paths served without a token (see api.http.auth): the pages and their files.
PAGE_PATHS = frozenset({"/", "/docs"})
PAGE_PREFIXES = ("/ui/", "/static/")


async def dashboard(request: Request) -> Response:
    """The one page of the dashboard: its script shows the job list at ``/`` and a job at ``/ui/jobs/{id}``."""
    return FileResponse(DASHBOARD_PAGE, media_type="text/html; charset=utf-8")


async def api_docs(request: Request) -> Response:
    return FileResponse(DOCS_PAGE, media_type="text/html; charset=utf-8")


routes = [
    Route("/", dashboard, methods=["GET"]),
    Route("/ui/jobs/{job_id}", dashboard, methods=["GET"]),
    Route("/docs", api_docs, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
]
