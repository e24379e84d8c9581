"""The server's Prometheus metrics, kept with ``prometheus-client``.

``bso serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before its
workers start, so each worker writes its values to memory-mapped files there and
any one worker's ``/metrics`` answers for all of them. Without that variable (an
app built in-process, as the tests do) the values live in this process only.
Which of the two applies is fixed by prometheus-client when it is first imported;
``render`` asks it rather than the environment, so a scrape always reads where the
values are written.

Every label takes its value from a fixed set, whatever clients send: the route's
template (never a job id), the HTTP method, the status class, a trial kind, a
trial outcome, a stage.

Only the event loop's thread writes the values. prometheus-client guards every
multiprocess value with one lock per process; with the commands' threads writing too,
a thread that held it while it waited for the GIL stalled the event loop, and the
load benchmark lost about 7% of its throughput. So the application's observer only
queues what it saw, and the middleware applies the queue as each request ends.
"""

import threading
import time
from collections import deque
from typing import Any, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from application.observation import CommandFinished, EventsSaved, Observation
from domain.bounds import BOUND_STOPS, STOPPED_IN_A_ROW_WARNING
from domain.enums import Stage, TrialKind
from domain.job import Job

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED_ROUTE = "unmatched"  # any path no route serves, and requests refused before routing
_METHODS = {"GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"}
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_REGISTRY = CollectorRegistry(auto_describe=True)

REQUEST_SECONDS = Histogram(
    "bso_http_request_duration_seconds",
    "Time from request to the end of the response, by route template, method and status class",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=_REGISTRY,
)
COMMANDS = Counter(
    "bso_commands", "Commands finished: saved, answered from a stored idempotency key, or given up",
    registry=_REGISTRY,
)
CONFLICTS_RETRIED = Counter(
    "bso_conflicts_retried", "Command attempts lost to a concurrent writer and re-run from a fresh load",
    registry=_REGISTRY,
)
COMMANDS_GAVE_UP = Counter(
    "bso_commands_gave_up", "Commands that lost every attempt and answered 409", registry=_REGISTRY
)
MAX_RETRIES = Gauge(
    "bso_command_max_retries", "Most retries one command needed since the server started",
    multiprocess_mode="max", registry=_REGISTRY,
)
TRIALS_DISPATCHED = Counter(
    "bso_trials_dispatched", "Trials handed out, by kind: exploration (pruning), concurrent (pruning, "
    "while an exploration is in flight), bandit", ["kind"], registry=_REGISTRY,
)
TRIALS_FINISHED = Counter(
    "bso_trials_finished", "Trials finished, by outcome: converged, cost_bound (stopped by early "
    "stopping), not_converged (max epochs), ended (PATCH /trials before a result), expired (lease)",
    ["outcome"], registry=_REGISTRY,
)
APPEND_SECONDS = Histogram(
    "bso_event_store_append_seconds", "Time to commit one command's events to the event store",
    buckets=_LATENCY_BUCKETS, registry=_REGISTRY,
)
REANALYSES = Counter("bso_reanalyses", "Reanalyses run over HTTP (POST /v1/jobs/{job_id}/reanalysis)", registry=_REGISTRY)

_KINDS = {TrialKind.EXPLORATION: "exploration", TrialKind.CONCURRENT: "concurrent", TrialKind.BANDIT: "bandit"}
# Each label's children, made once: labels() takes a lock and checks its values on every call.
_DISPATCHED = {kind: TRIALS_DISPATCHED.labels(name) for kind, name in _KINDS.items()}
_OTHER_KIND = TRIALS_DISPATCHED.labels("other")
_FINISHED = {
    outcome: TRIALS_FINISHED.labels(outcome)
    for outcome in ("converged", "cost_bound", "not_converged", "ended", "expired")
}
_STAGES = {Stage.PRUNING: "pruning", Stage.LOCAL_SEARCH: "local_search", Stage.BANDIT: "bandit"}


_observed: deque[Observation] = deque()  # appends and pops are atomic: no lock needed


def queue_observation(observation: Observation) -> None:
    """The application's observer, called in the commands' threads: keep it for the event loop."""
    _observed.append(observation)


def apply_observations() -> None:
    """Turn what the application did into metric values (in the event loop's thread)."""
    while _observed:
        observe(_observed.popleft())


def observe(observation: Observation) -> None:
    if isinstance(observation, CommandFinished):
        COMMANDS.inc()
        if observation.retries:  # most commands win their first attempt: skip two shared writes
            CONFLICTS_RETRIED.inc(observation.retries)
            _raise_max_retries(observation.retries)
        if observation.gave_up:
            COMMANDS_GAVE_UP.inc()
    elif isinstance(observation, EventsSaved):
        APPEND_SECONDS.observe(observation.seconds)
        for event in observation.events:
            _count_event(event)


_most_retries = 0  # this process's maximum, so the shared gauge is written only when it grows
_most_retries_lock = threading.Lock()


def _raise_max_retries(retries: int) -> None:
    global _most_retries
    with _most_retries_lock:
        if retries > _most_retries:
            _most_retries = retries
            MAX_RETRIES.set(retries)


def _count_event(event: object) -> None:
    if isinstance(event, Job.TrialDispatched):
        _DISPATCHED.get(event.kind, _OTHER_KIND).inc()
    elif isinstance(event, Job.TrialReported):
        _FINISHED[trial_outcome(event)].inc()
    elif isinstance(event, Job.TrialEnded):
        _FINISHED["ended"].inc()
    elif isinstance(event, Job.TrialExpired):
        _FINISHED["expired"].inc()


def trial_outcome(event: Job.TrialReported) -> str:
    if event.converged:
        return "converged"
    return "cost_bound" if event.reason in BOUND_STOPS else "not_converged"


class JobCensus:
    """A collector read at scrape time: jobs per stage, and jobs whose trials keep being stopped
    by the cost bound, counted from the shared event log."""

    def __init__(self, counts: dict[str, int], stopped_in_a_row: int) -> None:
        self._counts = counts
        self._stopped_in_a_row = stopped_in_a_row

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "bso_jobs", "Jobs in the event store by stage: pruning, bandit, or deleted", labels=["stage"]
        )
        for stage, count in self._counts.items():
            family.add_metric([_STAGES.get(stage, stage)], count)
        yield family
        yield GaugeMetricFamily(
            "bso_jobs_stopped_in_a_row",
            f"Live jobs whose last {STOPPED_IN_A_ROW_WARNING} or more trials were all stopped by the cost bound "
            "(in dispatch order): their bound may have fallen behind costs that grow",
            value=self._stopped_in_a_row,
        )


def render(jobs_by_stage: dict[str, int], stopped_in_a_row: int) -> bytes:
    """The exposition text: every worker's values (or this process's) and the job census."""
    apply_observations()
    if getattr(values.ValueClass, "_multiprocess", False):
        workers = CollectorRegistry()
        MultiProcessCollector(workers)
        text = generate_latest(workers)
    else:
        text = generate_latest(_REGISTRY)
    census = CollectorRegistry()
    census.register(JobCensus(jobs_by_stage, stopped_in_a_row))
    return text + generate_latest(census)


class RequestMetrics:
    """ASGI middleware timing each request under its route's template."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.templates = dict(_templates(routes, ""))
        # Every label takes values from a fixed set, so the children can be kept; looking one
        # up through labels() takes a lock and a validation on every request.
        self.histograms: dict[tuple[str, str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            # Routing filled in the endpoint on this same scope; no endpoint, no route.
            route = self.templates.get(scope.get("endpoint"), UNMATCHED_ROUTE)  # type: ignore[arg-type]
            method = scope["method"] if scope["method"] in _METHODS else "other"
            labels = (route, method, f"{status // 100}xx")
            histogram = self.histograms.get(labels)
            if histogram is None:
                histogram = self.histograms[labels] = REQUEST_SECONDS.labels(*labels)
            histogram.observe(time.perf_counter() - started)
            apply_observations()


def _templates(routes: list[BaseRoute], prefix: str) -> Iterable[tuple[object, str]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _templates(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            yield route.endpoint, prefix + route.path
