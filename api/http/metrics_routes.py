"""``GET /metrics``: this worker process's counters in Prometheus text format.

Each worker process has its own counters; the ``pid`` label tells them apart, and a
scraper (or bench/hammer.py) sums over the processes it has seen.
"""

import os

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from application.service import BatchSizeOptimizer

_COUNTERS = [
    ("commands", "bso_commands_total", "counter", "Commands finished (saved, answered from a stored key, or given up)"),
    ("conflicts_retried", "bso_conflicts_retried_total", "counter", "Attempts lost to a concurrent writer and retried"),
    ("max_retries", "bso_command_max_retries", "gauge", "Most retries any one command needed"),
    ("retry_budget_exhausted", "bso_retry_budget_exhausted_total", "counter", "Commands that gave up after every retry (409)"),
]


async def metrics(request: Request) -> Response:
    optimizer: BatchSizeOptimizer = request.app.state.optimizer
    stats = optimizer.conflict_stats.as_dict()
    label = f'{{pid="{os.getpid()}"}}'
    lines = []
    for field, name, kind, description in _COUNTERS:
        lines += [f"# HELP {name} {description}", f"# TYPE {name} {kind}", f"{name}{label} {stats[field]}"]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


routes = [Route("/metrics", metrics, methods=["GET"])]
