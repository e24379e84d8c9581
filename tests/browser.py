"""Debian's Chromium driven by Playwright, for the dashboard tests, benchmark and screenshots.

Playwright's own browser download (``playwright install``) cannot work on these
machines, so the system Chromium is launched by path; ``.ci/run`` installs it.
"""

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The page's chart ids, in the order the job page draws them.
JOB_CHARTS = ("chart-batch-size", "chart-cost", "chart-arms", "chart-pruning", "chart-telemetry")


def why_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the browser tests"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed: python -m pip install -e '.[test]'"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a playwright Browser), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageProblems:
    """What went wrong while a page ran: console errors, uncaught errors, failed or refused requests."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    error_responses: list[tuple[int, str]] = field(default_factory=list)

    def watch(self, page: Any) -> "PageProblems":
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        page.on("requestfailed", lambda request: self.failed_requests.append(f"{request.url}: {request.failure}"))
        page.on("response", lambda response: response.status >= 400 and self.error_responses.append((response.status, response.url)))
        return self

    def clear(self) -> None:
        self.console_errors.clear()
        self.failed_requests.clear()
        self.error_responses.clear()

    def assert_none(self) -> None:
        assert (self.console_errors, self.failed_requests, self.error_responses) == ([], [], [])


# JavaScript run in the page: facts about a chart drawn on a canvas.
CHART_FACTS = """(id) => {
  const canvas = document.getElementById(id);
  const chart = canvas && window.Chart.getChart(canvas);
  if (!chart) return null;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked += 1;
  return {
    inked,
    area: canvas.width * canvas.height,
    title: chart.options.plugins.title.text,
    labels: chart.data.labels || [],
    datasets: chart.data.datasets.map((d) => ({
      label: d.label,
      outcome: d.outcome || null,
      points: d.data.filter((p) => p !== null).length,
      ys: d.data.map((p) => (p && typeof p === "object" && !Array.isArray(p) ? p.y : p)),
    })),
  };
}"""


def chart_facts(page: Any, chart_id: str) -> dict[str, Any] | None:
    return page.evaluate(CHART_FACTS, chart_id)


def points(facts: dict[str, Any], label: str) -> int:
    return next(dataset["points"] for dataset in facts["datasets"] if dataset["label"] == label)


def points_by_outcome(facts: dict[str, Any]) -> dict[str, int]:
    """Points of the trial datasets (one per outcome and kind), added up per outcome."""
    totals: dict[str, int] = {}
    for dataset in facts["datasets"]:
        if dataset["outcome"]:
            totals[dataset["outcome"]] = totals.get(dataset["outcome"], 0) + dataset["points"]
    return totals
