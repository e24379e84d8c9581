"""Dashboard: a 10,000-trial job's page and a 20,000-job list in headless Chromium.

    python -m bench.dashboard                      # 10,000 trials, 20,000 jobs, 5 loads each
    python -m bench.dashboard --trials 1000 --jobs 2000 --loads 3

The event store (a fresh SQLite file) is written in process by the application
itself, which is much faster than over HTTP; then ``bso serve`` serves it and
Debian's Chromium (via Playwright) opens the pages. Figures, medians of the loads:

- job page: from navigation start until every chart, the trial table and the
  telemetry of the default trial are drawn (the page's own ``bso-job-drawn``
  measure); time travel: the same for an earlier version, from the click;
- the reads behind it, timed from Python: state, trials with their why (and its size);
- job list: first page, next page and a page near the end, each from navigation start
  until the table is drawn, with the bytes of the ``/v1/jobs`` answer behind it,
  which stay the same whatever the page (the catalog cursor reads one page);
- cold: the job page and a time travel to a version not read before, as the first reads of
  a freshly started server, with the trial views' read model and with it emptied (as a
  store written before it existed reads), and the first page of trials through the API.

    python -m bench.dashboard --database postgres --jobs 2000 --trials 10000
"""

import argparse
import random
import statistics
import time
from typing import Any

import httpx

from application.service import BatchSizeOptimizer
from bench.common import event_store, machine, print_json, running_server
from domain.reporting import EpochReport
from infrastructure.settings import persistence_env
from tests import browser

BATCH_SIZES = [8, 16, 32, 64, 128, 256, 512, 1024]
# Only what differs from the domain's defaults (domain.spec.DEFAULTS fills in the rest).
JOB_SPEC = {
    "job_id": "bench-10k",
    "job_id_prefix": "bench",
    "batch_sizes": BATCH_SIZES,
    "default_batch_size": 128,
    "max_epochs": 20,
    "mab_seed": 1,
    "max_power": 300.0,
    "number_of_gpus": 1,
    "gpu_model": "bench",
}


def epoch_cost(batch_size: int) -> tuple[float, float]:
    """Seconds and joules per epoch: cheapest around 64, dearer either side."""
    distance = abs(BATCH_SIZES.index(batch_size) - BATCH_SIZES.index(64))
    return 60.0 * (1 + 0.3 * distance), 12_000.0 * (1 + 0.25 * distance)


def build_history(database_url: str, trials: int, jobs: int) -> None:
    """One job with ``trials`` trials (a final report each, some given up) and ``jobs`` more."""
    rng = random.Random(1)
    app = BatchSizeOptimizer(env=persistence_env(database_url))
    try:
        app.register_job(JOB_SPEC)
        for _ in range(trials):
            trial = app.predict(JOB_SPEC["job_id"])
            number, size = trial["trial_number"], trial["batch_size"]
            if rng.random() < 0.02:
                app.end_trial(JOB_SPEC["job_id"], number, size)
                continue
            seconds, joules = epoch_cost(size)
            epochs = rng.randint(4, 8)
            noise = rng.uniform(0.9, 1.1)
            metric = 0.6 if size >= 16 else 0.4
            report = EpochReport(number, size, seconds * epochs * noise, joules * epochs * noise, metric, epochs)
            app.report(JOB_SPEC["job_id"], report)
        for number in range(jobs):
            app.register_job({**JOB_SPEC, "job_id": f"list-{number:05d}", "job_id_prefix": "list"})
        while app.follow_trial_views(limit=5000):  # PostgreSQL: as readers would have, over time
            pass
    finally:
        app.close()


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples), 1)


def timed_get(http: httpx.Client, path: str, **params: Any) -> tuple[float, int]:
    started = time.perf_counter()
    response = http.get(path, params=params)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000, len(response.content)


def job_page(page: Any, url: str, loads: int) -> dict[str, Any]:
    latest = httpx.get(f"{url}/v1/jobs/{JOB_SPEC['job_id']}", timeout=60).json()["version"]
    earlier = latest // 2
    full, travel = [], []
    for _ in range(loads):
        page.goto(f"{url}/ui/jobs/{JOB_SPEC['job_id']}")
        page.wait_for_selector(f"#view[data-rendered='version-{latest}']", timeout=120_000)
        drawn = page.evaluate("performance.getEntriesByName('bso-job-drawn')[0]")
        full.append(drawn["startTime"] + drawn["duration"])
        page.fill("#tt-version", str(earlier))
        page.click("#tt-go")
        page.wait_for_selector(f"#view[data-rendered='version-{earlier}']", timeout=120_000)
        travel.append(page.evaluate("performance.getEntriesByName('bso-job-drawn')[1].duration"))
    facts = browser.chart_facts(page, "chart-batch-size")
    return {
        "version": latest,
        "points_in_batch_size_chart": sum(d["points"] for d in facts["datasets"]),
        "render_ms": median_ms(full),
        "render_ms_all": [round(ms) for ms in full],
        "time_travel_ms": median_ms(travel),
        "time_travel_version": earlier,
    }


def reads(url: str, loads: int) -> dict[str, Any]:
    job = JOB_SPEC["job_id"]
    with httpx.Client(base_url=url, timeout=120) as http:
        state = [timed_get(http, f"/v1/jobs/{job}") for _ in range(loads)]
        trials = [timed_get(http, f"/v1/jobs/{job}/trials", why="true") for _ in range(loads)]
        csv = [timed_get(http, f"/v1/jobs/{job}/trials.csv") for _ in range(loads)]
    return {
        "state_ms": median_ms([ms for ms, _ in state]),
        "trials_with_why_ms": median_ms([ms for ms, _ in trials]),
        "trials_with_why_bytes": trials[0][1],
        "trials_csv_ms": median_ms([ms for ms, _ in csv]),
        "trials_csv_bytes": csv[0][1],
    }


def job_list(page: Any, url: str, jobs: int, loads: int) -> dict[str, Any]:
    """First, second and near-last page, each from a fresh navigation."""
    with httpx.Client(base_url=url, timeout=60) as http:
        first = http.get("/v1/jobs", params={"limit": 50}).json()
        near_end = max(0, jobs + 1 - 50)  # cursors are catalog positions, 1 per registration
        pages = {"first": "/", "second": f"/?after={first['next_after']}", "near_end": f"/?after={near_end}"}
        figures: dict[str, Any] = {}
        for name, path in pages.items():
            samples = []
            for _ in range(loads):
                page.goto(f"{url}{path}")
                page.wait_for_selector("#jobs tbody tr", timeout=60_000)
                samples.append(page.evaluate("performance.now()"))
            after = int(path.split("after=")[1]) if "after=" in path else 0
            ms, size = timed_get(http, "/v1/jobs", limit=50, after=after)
            figures[name] = {"render_ms": median_ms(samples), "api_ms": round(ms, 1), "api_bytes": size, "rows": page.locator("#jobs tbody tr").count()}
    return figures


def assert_no_problems(problems: browser.PageProblems) -> None:
    """No error on the page; a poll cut short by navigating away (net::ERR_ABORTED) is none."""
    problems.failed_requests[:] = [failure for failure in problems.failed_requests if not failure.endswith("net::ERR_ABORTED")]
    problems.assert_none()


def cold_starts(chromium: Any, database_url: str, starts: int) -> dict[str, Any]:
    """The big job's page, and a time travel to a version not read before, each the first of a
    freshly started server (nothing cached in it): with the trial views' read model, and with
    it emptied, as a store written before it existed reads."""
    figures: dict[str, Any] = {}
    for label in ("with_read_model", "without_read_model"):
        if label == "without_read_model":
            app = BatchSizeOptimizer(env=persistence_env(database_url))
            assert app.trial_views is not None
            with app.trial_views.transaction() as session:
                app.trial_views.clear(session)
            app.close()
        pages, travels, trials_api = [], [], []
        for start in range(starts):
            with running_server(database_url) as server:
                page = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                problems = browser.PageProblems().watch(page)
                latest = httpx.get(f"{server.url}/v1/jobs/{JOB_SPEC['job_id']}", timeout=60).json()["version"]
                page.goto(f"{server.url}/ui/jobs/{JOB_SPEC['job_id']}")
                page.wait_for_selector(f"#view[data-rendered='version-{latest}']", timeout=300_000)
                drawn = page.evaluate("performance.getEntriesByName('bso-job-drawn')[0]")
                pages.append(drawn["startTime"] + drawn["duration"])
                version = latest // 3 + 17 * start  # a version no read of this server has seen
                page.fill("#tt-version", str(version))
                page.click("#tt-go")
                page.wait_for_selector(f"#view[data-rendered='version-{version}']", timeout=300_000)
                travels.append(page.evaluate("performance.getEntriesByName('bso-job-drawn')[1].duration"))
                assert_no_problems(problems)
                page.context.close()
            with running_server(database_url) as server, httpx.Client(base_url=server.url, timeout=300) as http:
                trials_api.append(timed_get(http, f"/v1/jobs/{JOB_SPEC['job_id']}/trials", why="true", limit=50)[0])
        figures[label] = {
            "page_ms": median_ms(pages),
            "page_ms_all": [round(ms) for ms in pages],
            "time_travel_ms": median_ms(travels),
            "time_travel_ms_all": [round(ms) for ms in travels],
            "first_trials_page_api_ms": median_ms(trials_api),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000, help="trials of the big job (default 10,000)")
    parser.add_argument("--jobs", type=int, default=20_000, help="further jobs in the list (default 20,000)")
    parser.add_argument("--loads", type=int, default=5, help="page loads per figure (default 5)")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite", help="the event store (default sqlite)")
    parser.add_argument("--cold-starts", type=int, default=3, help="fresh server starts per cold figure (default 3)")
    args = parser.parse_args()
    problem = browser.why_unavailable()
    if problem:
        raise SystemExit(f"bench.dashboard: {problem}")
    with event_store(args.database) as database_url:
        started = time.perf_counter()
        build_history(database_url, args.trials, args.jobs)
        built = time.perf_counter() - started
        with browser.chromium() as chromium:
            with running_server(database_url) as server:
                page = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                problems = browser.PageProblems().watch(page)
                figures = {
                    "warm_job_page": job_page(page, server.url, args.loads),
                    "warm_reads": reads(server.url, args.loads),
                    "job_list": job_list(page, server.url, args.jobs, args.loads),
                }
                assert_no_problems(problems)
                page.context.close()
            figures["cold"] = cold_starts(chromium, database_url, args.cold_starts)
    print_json(
        {
            "benchmark": "dashboard",
            "database": args.database,
            "trials": args.trials,
            "jobs": args.jobs + 1,
            "loads": args.loads,
            "build_seconds": round(built, 1),
            **figures,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
