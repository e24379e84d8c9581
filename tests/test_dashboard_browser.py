"""The dashboard in a real browser (Debian's Chromium via Playwright) against a real ``bso serve``.

The server is populated by ``bso simulate --url`` and a scripted job whose trials end
in every way (tests/dashboard_data.py). The tests open the list, page it, open a job,
check every chart is drawn with the right number of points, travel back in time,
run a what-if, and, with a token, check that nothing shows until it is entered.
Skipped, saying why, where Chromium or Playwright is missing (CI installs both).
"""

import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests import browser
from tests.dashboard_data import LEASE_SECONDS, MIXED_JOB, MIXED_SPEC, Populated, Trainer, populate, script_mixed_job
from tests.servers import ServerProcess, running_server

pytestmark = pytest.mark.skipif(browser.why_unavailable() is not None, reason=str(browser.why_unavailable()))

TOKEN = "browser-token"
BULK_JOBS = 50  # with the two populated jobs: two pages of the list (50 a page)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser.chromium() as launched:
        yield launched


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def populated(shared_database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, Populated]]:
    """A real server on SQLite or PostgreSQL with the simulated job, the mixed job and 50 more."""
    with running_server(shared_database_url, tmp_path, "--trial-lease-seconds", str(LEASE_SECONDS)) as server:
        jobs = populate(server.url)
        trainer = Trainer(server.url, None)
        for number in range(BULK_JOBS):
            trainer.register({**MIXED_SPEC, "job_id": f"bulk-{number:02d}", "job_id_prefix": "bulk"})
        yield server, jobs


def read(server: ServerProcess, path: str, **params: Any) -> Any:
    return httpx.get(f"{server.url}{path}", params=params, timeout=30).json()


def job_rows(page: Any) -> list[str]:
    return page.locator("#jobs tbody tr").evaluate_all("(rows) => rows.map((row) => row.dataset.job)")


def open_job_list(page: Any, server: ServerProcess) -> None:
    page.goto(f"{server.url}/")
    page.wait_for_selector("#jobs tbody tr")


def wait_rendered(page: Any, version: int) -> None:
    page.wait_for_selector(f"#view[data-rendered='version-{version}']")


def assert_drawn(facts: dict[str, Any] | None) -> None:
    """The chart exists and a good part of its canvas carries ink (axes alone are far less)."""
    assert facts is not None
    assert facts["inked"] > 0.02 * facts["area"], facts["title"]


def min_cost_steps(trials: list[dict[str, Any]]) -> list[float]:
    """The running min cost after each final report (in the order reports came), by trial
    number, kept where it changes and at the end: the points of the stepped line."""
    reported = sorted((t for t in trials if t["status"] == "Succeeded"), key=lambda t: (t["finished_at"], t["number"]))
    after: dict[int, float] = {}
    for trial in reported:
        after[trial["number"]] = min([trial["cost"], *after.values()])
    values = [after[number] for number in sorted(after)]
    return [v for i, v in enumerate(values) if i in (0, len(values) - 1) or v != values[i - 1]]


def assert_job_charts_match(page: Any, server: ServerProcess, version: int | None = None) -> dict[str, Any]:
    """Every chart of the job page drawn, with one point per trial (as of ``version``)."""
    moment = {"version": version} if version else {}
    state = read(server, f"/v1/jobs/{MIXED_JOB}/state", **moment)
    trials = read(server, f"/v1/jobs/{MIXED_JOB}/trials", why="true", **moment)["trials"]
    facts = {name: browser.chart_facts(page, name) for name in browser.JOB_CHARTS}
    for name in ("chart-batch-size", "chart-cost", "chart-pruning", "chart-telemetry"):
        assert_drawn(facts[name])
    assert sum(browser.points_by_outcome(facts["chart-batch-size"]).values()) == len(trials)
    with_cost = [trial for trial in trials if trial["cost"] is not None]
    assert sum(browser.points_by_outcome(facts["chart-cost"]).values()) == len(with_cost)
    running_min = next(d for d in facts["chart-cost"]["datasets"] if d["label"] == "running min cost")
    assert running_min["ys"] == pytest.approx(min_cost_steps(trials))
    explorations = [trial for trial in trials if trial["kind"] == "Exploration"]
    walk = [d for d in facts["chart-pruning"]["datasets"] if d["label"].startswith("round ")]
    assert sum(d["points"] for d in walk) == len(explorations)
    if state["arms"]:
        assert_drawn(facts["chart-arms"])
        assert facts["chart-arms"]["labels"] == [str(arm["batch_size"]) for arm in state["arms"]]
        assert browser.points(facts["chart-arms"], "observations") == len(state["arms"])
    else:
        assert facts["chart-arms"] is None
        assert "No bandit yet" in page.locator("#arms-note").inner_text()
    assert page.locator("#trials tbody tr").count() == min(len(trials), 50)
    return facts


def test_list_job_page_time_travel_and_what_if(page: Any, populated: tuple[ServerProcess, Populated]) -> None:
    server, jobs = populated
    problems = browser.PageProblems().watch(page)

    # The list: 50 a page, the catalog cursor for the next, the prefix filter.
    open_job_list(page, server)
    first = job_rows(page)
    assert first[:2] == [jobs.simulated_job, MIXED_JOB] and len(first) == 50
    page.click("#next-page")
    page.wait_for_selector("#jobs tbody tr[data-job='bulk-49']")
    assert job_rows(page) == ["bulk-48", "bulk-49"]
    assert page.locator("#next-page").is_disabled()
    page.click("#previous-page")
    page.wait_for_selector(f"#jobs tbody tr[data-job='{jobs.simulated_job}']")
    page.fill("#prefix", "mixed")
    page.press("#prefix", "Enter")
    page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 1")
    row = page.locator(f"#jobs tbody tr[data-job='{MIXED_JOB}']").inner_text()
    assert "bandit" in row and "13 (1 in flight, 7 converged, 3 stopped, 2 ended or expired)" in row

    # The job page: every chart, every outcome and kind of the script.
    page.click(f"text={MIXED_JOB}")
    latest = read(server, f"/v1/jobs/{MIXED_JOB}")["version"]
    wait_rendered(page, latest)
    facts = assert_job_charts_match(page, server)
    assert browser.points_by_outcome(facts["chart-batch-size"]) == {
        "converged": 7,
        "cost_bound": 2,
        "max_epochs": 1,
        "ended": 1,
        "expired": 1,
        "in_flight": 1,
    }
    kinds = {d["label"].split(" · ")[1] for d in facts["chart-batch-size"]["datasets"] if d["outcome"]}
    assert kinds == {"pruning exploration", "concurrent (stand-in)", "bandit"}
    assert "pruning round 1, walking down from the default: explore 32" in page.locator("#trials tbody tr[data-trial='1'] td.why").inner_text()
    assert "waiting for trial 1" in page.locator("#trials tbody tr[data-trial='2'] td.why").inner_text()
    assert "bandit Thompson sampling" in page.locator("#trials tbody tr[data-trial='6'] td.why").inner_text()

    # Per-epoch telemetry of a trial picked in the table.
    page.click("#trials tbody tr[data-trial='3']")
    page.wait_for_function("window.Chart.getChart(document.getElementById('chart-telemetry')).options.plugins.title.text.startsWith('Trial 3 ')")
    telemetry = browser.chart_facts(page, "chart-telemetry")
    epochs = read(server, f"/v1/jobs/{MIXED_JOB}/trials/3")["epochs"]
    assert browser.points(telemetry, "cost") == browser.points(telemetry, "metric") == len(epochs) == 4
    assert telemetry["datasets"][0]["ys"] == [epoch["cost"] for epoch in epochs]

    # Time travel: before the bandit, then to an instant; the charts follow.
    early = 12
    page.fill("#tt-version", str(early))
    page.click("#tt-go")
    wait_rendered(page, early)
    then = assert_job_charts_match(page, server, early)
    assert then["chart-batch-size"]["datasets"] != facts["chart-batch-size"]["datasets"]
    middle = read(server, f"/v1/jobs/{MIXED_JOB}/state", version=30)
    page.fill("#tt-at", middle["updated_at"])
    page.click("#tt-go-at")
    wait_rendered(page, 30)
    assert_job_charts_match(page, server, 30)
    assert "version=30" in page.url
    page.click("#tt-latest")
    wait_rendered(page, latest)

    # The CSV download is the route's CSV.
    with page.expect_download() as download:
        page.click("#download-csv")
    saved = Path(download.value.path()).read_text()
    assert saved == httpx.get(f"{server.url}/v1/jobs/{MIXED_JOB}/trials.csv", timeout=30).text

    # What-if: no early stopping and more weight on energy.
    page.check("#whatif-form input[name=no_beta]")
    page.fill("#whatif-form input[name=eta_knob]", "0.9")
    page.click("#whatif-form button[type=submit]")
    page.wait_for_selector("#whatif-caveats")
    report = httpx.post(f"{server.url}/v1/jobs/{MIXED_JOB}/reanalysis", content=json.dumps({"beta_knob": None, "eta_knob": 0.9}), timeout=60).json()
    what_if = browser.chart_facts(page, "chart-whatif")
    assert_drawn(what_if)
    actual, counterfactual = what_if["datasets"]
    assert actual["points"] == counterfactual["points"] == len(report["trials"])
    assert actual["ys"] != counterfactual["ys"]
    assert counterfactual["ys"][-1] == pytest.approx(report["summary"]["counterfactual"]["cost"])
    assert page.locator("#whatif-diffs tbody tr").count() == sum(bool(trial["changed"]) for trial in report["trials"])
    caveats = page.locator("#whatif-caveats").inner_text()
    assert ("Incomplete" in caveats) == (not report["summary"]["counterfactual"]["complete"])
    for number in report["summary"]["counterfactual"]["unknown_trials"]:
        assert str(number) in caveats
    problems.assert_none()


def test_what_if_refusal_and_api_docs_render_offline(page: Any, tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'bso.db'}", tmp_path, "--trial-lease-seconds", str(LEASE_SECONDS)) as server:
        script_mixed_job(server.url)
        problems = browser.PageProblems().watch(page)
        page.goto(f"{server.url}/ui/jobs/{MIXED_JOB}")
        wait_rendered(page, read(server, f"/v1/jobs/{MIXED_JOB}")["version"])
        page.fill("#whatif-form input[name=eta_knob]", "1.5")
        page.click("#whatif-form button[type=submit]")
        assert "eta_knob" in page.locator("#whatif-error").inner_text()
        assert problems.error_responses == [(422, f"{server.url}/v1/jobs/{MIXED_JOB}/reanalysis")]
        problems.clear()

        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".opblock-summary-path[data-path='/v1/jobs/{job_id}/trials.csv']")
        assert page.locator(".opblock").count() >= 15
        problems.assert_none()


def test_with_a_token_nothing_shows_until_it_is_entered(chromium: Any, tmp_path: Path) -> None:
    env = {"BSO_AUTH_TOKEN": TOKEN, "BSO_AUTH_READS": "y"}
    with running_server(f"sqlite:///{tmp_path / 'bso.db'}", tmp_path, "--trial-lease-seconds", str(LEASE_SECONDS), **env) as server:
        script_mixed_job(server.url, TOKEN)
        context = chromium.new_context()
        page = context.new_page()
        page.set_default_timeout(30_000)
        problems = browser.PageProblems().watch(page)

        page.goto(f"{server.url}/")
        page.wait_for_selector("#token-form:not([hidden])")
        assert page.locator("#view").is_hidden() and MIXED_JOB not in page.content()
        page.fill("#token-input", "wrong")
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("#token-reason:text('refused')")
        assert MIXED_JOB not in page.content()
        refused = [status for status, _ in problems.error_responses]
        assert refused and set(refused) == {401}
        problems.clear()

        page.fill("#token-input", TOKEN)
        page.click("#token-form button[type=submit]")
        page.wait_for_selector(f"#jobs tbody tr[data-job='{MIXED_JOB}']")
        page.click(f"text={MIXED_JOB}")
        latest = httpx.get(f"{server.url}/v1/jobs/{MIXED_JOB}", headers={"Authorization": f"Bearer {TOKEN}"}).json()["version"]
        wait_rendered(page, latest)
        assert_drawn(browser.chart_facts(page, "chart-batch-size"))
        page.reload()  # the token stays for this tab: no second prompt
        wait_rendered(page, latest)
        assert page.locator("#token-form").is_hidden()
        page.goto(f"{server.url}/docs")  # the docs page sends it too, for /openapi.json
        page.wait_for_selector(".opblock")
        problems.assert_none()
        context.close()

        fresh = chromium.new_context().new_page()  # another session: asked again
        fresh.goto(f"{server.url}/ui/jobs/{MIXED_JOB}")
        fresh.wait_for_selector("#token-form:not([hidden])")
        assert fresh.locator("canvas").count() == 0 or browser.chart_facts(fresh, "chart-batch-size") is None
        fresh.context.close()
