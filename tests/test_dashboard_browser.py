"""The dashboard in a real browser (Debian's Chromium via Playwright) against a real ``bso serve``.

The server is populated by ``bso simulate --url`` and a scripted job whose trials end
in every way (tests/dashboard_data.py). The tests open the list, page it, open a job,
check every chart is drawn with the right number of points, travel back in time,
run a what-if, and, with a token, check that nothing shows until it is entered. Then:
the pages follow a running job by themselves, an answer overtaken by a later one is
dropped, loading indicators show while an answer is awaited, the pages fit 800 px
without scrolling sideways, and a job of thousands of trials draws a bounded number of
points with its lines on top. Skipped, saying why, where Chromium or Playwright is
missing (CI installs both).
"""

import json
import re
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests import browser
from tests.dashboard_data import LEASE_SECONDS, MIXED_JOB, MIXED_SPEC, WORKLOAD, Populated, Trainer, populate, script_mixed_job, simulate
from tests.servers import ServerProcess, running_server

pytestmark = pytest.mark.skipif(browser.why_unavailable() is not None, reason=str(browser.why_unavailable()))

TOKEN = "browser-token"
BULK_JOBS = 50  # with the two populated jobs: two pages of the list (50 a page)
LIVE_WAIT_MS = 15_000  # the pages poll every 3 s (job) and 5 s (list) while visible
MAX_POINTS = 2000  # charts.js MAX_POINTS: the most points a chart series draws
NARROW, WIDE = 800, 1400


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


def wait_rows(page: Any, count: int) -> None:
    """Wait for the list's answer to a new ask (until then the rows before stay, dimmed) to have ``count`` rows."""
    page.wait_for_function(f"!document.querySelector('#jobs-box.pending') && document.querySelectorAll('#jobs tbody tr').length === {count}")


def open_job_list(page: Any, server: ServerProcess) -> None:
    page.goto(f"{server.url}/")
    page.wait_for_selector("#jobs tbody tr")


def wait_rendered(page: Any, version: int) -> None:
    page.wait_for_selector(f"#view[data-rendered='version-{version}']")


def no_problems(problems: browser.PageProblems) -> None:
    """``problems.assert_none()``, but a read cut short because the test itself moved the page
    to another URL (a poll in flight then: net::ERR_ABORTED) is no failure."""
    problems.failed_requests[:] = [failure for failure in problems.failed_requests if not failure.endswith("net::ERR_ABORTED")]
    problems.assert_none()


def open_what_if(page: Any) -> None:
    """The what-if form is folded away (a <details>) until wanted."""
    if not page.locator("#whatif-details").evaluate("(details) => details.open"):
        page.click("#whatif-details > summary")
    page.wait_for_selector("#whatif-form button[type=submit]", state="visible")


def submit_what_if(page: Any) -> None:
    """Send the form and wait for its answer (the one before stays, dimmed, until then)."""
    page.click("#whatif-form button[type=submit]")
    page.wait_for_selector("#whatif-result:not(.pending) #whatif-caveats, #whatif-result:not(.pending) #whatif-error")


def dropped(page: Any) -> int:
    """How many answers the page dropped because a later request overtook them."""
    return int(page.evaluate("document.documentElement.dataset.dropped || 0"))


def assert_fits(page: Any, width: int, max_height: int | None = None) -> int:
    """At ``width`` px the page never scrolls sideways (tables scroll in their own box); its height."""
    page.set_viewport_size({"width": width, "height": 900})
    # Chart.js follows a resize on its next frame: wait (bounded) for the layout to settle.
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth", timeout=5_000)
    scroll_width, inner_width, height = page.evaluate("[document.documentElement.scrollWidth, innerWidth, document.documentElement.scrollHeight]")
    assert scroll_width <= inner_width == width
    if max_height is not None:
        assert height <= max_height, f"{height} px tall at {width} px"
    return height


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


def assert_fleet_totals(page: Any, server: ServerProcess) -> None:
    """The list's head shows /v1/summary: overall and one row per GPU model, with the savings."""
    fleet = read(server, "/v1/summary")
    overall = page.locator("#fleet tr[data-fleet='overall']").inner_text()
    assert overall.split("\t")[1:3] == [str(fleet["overall"]["jobs"]), str(fleet["overall"]["settled_jobs"])]
    assert f"({fleet['overall']['cost']['fraction'] * 100:.1f} %)" in overall
    for gpu, totals in fleet["by_gpu_model"].items():
        assert page.locator(f"#fleet tr[data-fleet='{gpu}']").inner_text().split("\t")[1] == str(totals["jobs"])
    assert len(fleet["by_gpu_model"]) >= 2  # the simulated jobs' p100 and the scripted jobs' "test"


def column(page: Any, name: str) -> list[str]:
    return page.locator(f"#jobs tbody td[data-column='{name}']").all_inner_texts()


def assert_sorting_and_filters(page: Any, server: ServerProcess, jobs: Populated) -> None:
    # One click sorts ascending, the next descending, as the route sorts (rows without a value last).
    page.click("#jobs th[data-sort='savings_fraction'] button")
    page.wait_for_selector("#jobs th[data-sort='savings_fraction'][aria-sort='ascending']")
    ascending = read(server, "/v1/jobs", sort="savings_fraction", limit=50)
    assert job_rows(page) == [job["job_id"] for job in ascending["jobs"]]
    page.click("#jobs th[data-sort='savings_fraction'] button")
    page.wait_for_selector("#jobs th[data-sort='savings_fraction'][aria-sort='descending']")
    descending = read(server, "/v1/jobs", sort="-savings_fraction", limit=50)
    assert job_rows(page) == [job["job_id"] for job in descending["jobs"]]
    fractions = [job["savings_fraction"] for job in descending["jobs"] if job["savings_fraction"] is not None]
    assert fractions == sorted(fractions, reverse=True) and len(fractions) >= 2
    assert column(page, "savings_fraction")[0] == f"{fractions[0] * 100:.1f} %"
    assert column(page, "savings_fraction")[-1] == "–"  # the bulk jobs have nothing to save yet
    # Sorted pages go by offset: the second page is the last 3 of 53.
    page.click("#jobs th[data-sort='job_id'] button")
    page.wait_for_selector("#jobs th[data-sort='job_id'][aria-sort='ascending']")
    page.click("#jobs th[data-sort='job_id'] button")
    page.wait_for_selector("#jobs th[data-sort='job_id'][aria-sort='descending']")
    assert job_rows(page)[:2] == sorted([jobs.simulated_job, jobs.lsts_job], reverse=True)
    page.click("#next-page")
    page.wait_for_selector("#page-status:text('jobs 51–53')")
    assert job_rows(page) == ["bulk-02", "bulk-01", "bulk-00"] and "after=50" in page.url
    page.click("#previous-page")
    page.wait_for_selector("#page-status:text('jobs 1–50')")
    # Filters: by policy (LSTS: the one simulated job), then by GPU model and stage.
    page.select_option("#filter-policy", "lsts")
    wait_rows(page, 1)
    assert job_rows(page) == [jobs.lsts_job] and column(page, "policy") == ["lsts"]
    assert page.locator("#jobs th[aria-sort='descending']").count() == 1  # the sort stays
    page.select_option("#filter-policy", "zeus")
    wait_rows(page, 50)
    page.wait_for_selector("#fleet[data-loaded] ~ form #filter-gpu option[value='p100']", state="attached")
    page.select_option("#filter-gpu", "p100")
    wait_rows(page, 1)
    assert job_rows(page) == [jobs.simulated_job]
    page.click("#view a:text('Clear')")
    # The rows shown stay (dimmed, #jobs-box.pending) until the new answer replaces them.
    page.wait_for_selector(f"#jobs-box:not(.pending) #jobs tbody tr[data-job='{jobs.simulated_job}']")
    page.select_option("#filter-stage", "Pruning")
    wait_rows(page, 50)
    assert set(column(page, "stage")) == {"pruning round 1 of 1"}
    page.click("#view a:text('Clear')")
    # The rows shown stay (dimmed, #jobs-box.pending) until the new answer replaces them.
    page.wait_for_selector(f"#jobs-box:not(.pending) #jobs tbody tr[data-job='{jobs.simulated_job}']")


def test_list_job_page_time_travel_and_what_if(page: Any, populated: tuple[ServerProcess, Populated]) -> None:
    server, jobs = populated
    problems = browser.PageProblems().watch(page)

    # The list: the fleet's totals, 50 a page, the catalog cursor for the next, the prefix filter.
    open_job_list(page, server)
    assert_fleet_totals(page, server)
    first = job_rows(page)
    assert first[:3] == [jobs.simulated_job, jobs.lsts_job, MIXED_JOB] and len(first) == 50
    page.click("#next-page")
    page.wait_for_selector("#jobs tbody tr[data-job='bulk-49']")
    assert job_rows(page) == ["bulk-47", "bulk-48", "bulk-49"]
    assert page.locator("#next-page").is_disabled()
    page.click("#previous-page")
    page.wait_for_selector(f"#jobs tbody tr[data-job='{jobs.simulated_job}']")

    # The list fits a narrow window: its tables scroll in their own boxes.
    assert_fits(page, NARROW)
    assert_fits(page, WIDE)

    # Sorting by a column header (ascending, then descending), paged by offset; the filters.
    assert_sorting_and_filters(page, server, jobs)

    page.fill("#prefix", "mixed")
    page.press("#prefix", "Enter")
    wait_rows(page, 1)
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
    assert kinds == {"exploration (pruning or local search)", "concurrent (stand-in)", "bandit"}
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

    # The trial table's epochs are each run's last reported epoch (trial 1 ran 3).
    assert page.locator("#trials tbody tr[data-trial='1'] td.epochs").inner_text() == "3"

    # What-if: no early stopping and more weight on energy.
    open_what_if(page)
    page.check("#whatif-form input[name=no_beta]")
    page.fill("#whatif-form input[name=eta_knob]", "0.9")
    submit_what_if(page)
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
    no_problems(problems)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server with the same simulated workload under each policy: {policy: job id}."""
    scratch = tmp_path_factory.mktemp("policies")
    with running_server(f"sqlite:///{scratch / 'bso.db'}", scratch) as server:
        yield server, {policy: simulate(server.url, policy=policy)[0] for policy in ("zeus", "lsts")}


def assert_answers(page: Any, server: ServerProcess, job: str, sizes: list[int]) -> None:
    """The top of the job page: the recommended size, settled or not, the savings (the summary route)."""
    summary = read(server, f"/v1/jobs/{job}/summary")
    recommended = int(page.locator("#answer-batch-size .big").inner_text())
    assert recommended == summary["recommended_batch_size"] and recommended in sizes
    assert summary["recommendation"]["rule"] in page.locator("#answer-batch-size").inner_text()
    settled = page.locator("#answer-settled .big").inner_text()
    assert settled == (f"yes, since trial {summary['settled_since_trial']}" if summary["settled"] else "not yet")
    savings = summary["savings"]
    assert savings["default_estimate_missing"] is None  # the default size converged in the simulation
    for measure in ("energy", "time", "cost"):
        cells = page.locator(f"#savings tr[data-measure='{measure}'] td").all_inner_texts()
        assert cells[3] == f"{savings[measure]['fraction'] * 100:.1f} %" and "–" not in cells


@pytest.mark.parametrize("policy", ["zeus", "lsts"])
def test_job_page_of_each_policy(page: Any, simulated: tuple[ServerProcess, dict[str, str]], policy: str) -> None:
    server, jobs = simulated
    job = jobs[policy]
    problems = browser.PageProblems().watch(page)
    state = read(server, f"/v1/jobs/{job}")
    assert state["policy"] == policy
    page.goto(f"{server.url}/ui/jobs/{job}")
    wait_rendered(page, state["version"])
    facts = {name: browser.chart_facts(page, name) for name in browser.JOB_CHARTS}
    for name in browser.JOB_CHARTS:  # all five: the job is in its bandit
        assert_drawn(facts[name])
    assert_answers(page, server, job, state["spec"]["batch_sizes"])

    # The exploration chart: Zeus's pruning rounds, or LSTS's walk (it has no rounds).
    trials = read(server, f"/v1/jobs/{job}/trials", why="true")["trials"]
    explorations = [trial for trial in trials if trial["kind"] == "Exploration"]
    walk = facts["chart-pruning"]
    if policy == "lsts":
        assert walk["title"].startswith("LSTS local search walk (no pruning rounds)")
        assert browser.points(walk, "walk (explorations in order)") == len(explorations) == len(state["lsts"]["explored"])
        assert browser.points(walk, "bandit arms (explored sizes near the best)") == len(state["lsts"]["arms"])
        assert facts["chart-arms"]["title"].startswith("LSTS arms")
    else:
        assert sum(d["points"] for d in walk["datasets"] if d["label"].startswith("round ")) == len(explorations)
    assert facts["chart-arms"]["labels"] == [str(arm["batch_size"]) for arm in state["arms"]]

    # The trial table and its whys, in the policy's words.
    assert page.locator("#trials tbody tr").count() == min(len(trials), 50)
    whys = page.locator("#trials tbody td.why").all_inner_texts()
    if policy == "lsts":
        assert whys[0] == f"LSTS walk: start at the default batch size, {state['spec']['default_batch_size']}"
        assert any(why.startswith("LSTS Thompson sampling") for why in whys)
        assert any(why.startswith("LSTS bandit confirmation") for why in whys)
    else:
        assert whys[0].startswith("pruning round 1, walking down") and any(why.startswith("bandit Thompson") for why in whys)
    assert not any(why.startswith("{") for why in whys)  # every reason put in words

    # The telemetry's stop threshold is the bound the trial was judged against.
    page.click("#trials tbody tr[data-trial='3']")
    page.wait_for_function("window.Chart.getChart(document.getElementById('chart-telemetry')).options.plugins.title.text.startsWith('Trial 3 ')")
    threshold = next(d for d in browser.chart_facts(page, "chart-telemetry")["datasets"] if d["label"].startswith("stop threshold"))
    if policy == "lsts":
        expected = trials[2]["cost_bound"]  # recorded at dispatch: beta_explore x best
        assert "set at dispatch: beta_explore 1.75 × best" in threshold["label"]
        cost_line = next(d for d in facts["chart-cost"]["datasets"] if d["label"] == "each run's cost bound (set at its dispatch)")
        assert max(cost_line["ys"]) == pytest.approx(max(t["cost_bound"] for t in trials if t["cost_bound"] is not None))
    else:
        expected = state["spec"]["beta_knob"] * min(trials[0]["cost"], trials[1]["cost"])  # judged at each report
        assert "beta 2 × min cost" in threshold["label"]
    assert threshold["ys"] == pytest.approx([expected, expected])

    # Time travel: early on (still exploring), the answers stay the current ones, said so.
    page.fill("#tt-version", "12")
    page.click("#tt-go")
    wait_rendered(page, 12)
    for name in ("chart-batch-size", "chart-cost", "chart-pruning", "chart-telemetry"):
        assert_drawn(browser.chart_facts(page, name))
    assert page.locator("#answers-past").inner_text().startswith("These answers are the job's current ones, not as of version 12.")
    assert int(page.locator("#answer-batch-size .big").inner_text()) == read(server, f"/v1/jobs/{job}/summary")["recommended_batch_size"]
    assert "version=12" in page.url

    # Readable at every size: no sideways scroll at 1400 or 800 px, and not absurdly tall at
    # 800 (the trial table scrolls in its own box, the what-if form is folded away).
    page.click("#tt-latest")
    wait_rendered(page, state["version"])
    assert_fits(page, NARROW, max_height=5_000)
    assert_fits(page, WIDE)

    # What-if under the other policy: only the changed knob is sent; both sides in energy, time, cost.
    other = "zeus" if policy == "lsts" else "lsts"
    open_what_if(page)
    with page.expect_request(lambda request: request.url.endswith("/reanalysis")) as sent:
        page.select_option("#whatif-form select[name=policy]", other)
        submit_what_if(page)
    assert sent.value.post_data_json == {"policy": other}
    assert_drawn(browser.chart_facts(page, "chart-whatif"))
    for side in ("actual", "counterfactual"):
        cells = page.locator(f"#whatif-totals tr[data-side='{side}'] td").all_inner_texts()
        assert len(cells) == 5 and all(cell != "–" for cell in cells[:4]), cells
    with page.expect_request(lambda request: request.url.endswith("/reanalysis")) as sent:
        page.fill("#whatif-form input[name=tau]", "0.3")
        # The guards show the other policy's defaults (off for Zeus, on for LSTS): toggle one.
        assert page.is_checked("#whatif-form input[name=predictive_stop]") == (other == "lsts")
        page.click("#whatif-form input[name=predictive_stop]")
        submit_what_if(page)
    assert sent.value.post_data_json == {"policy": other, "tau": 0.3, "predictive_stop": other == "zeus"}
    assert json.loads(page.locator("#whatif-result").get_attribute("data-knobs")) == sent.value.post_data_json

    no_problems(problems)


def test_a_run_stopped_by_the_bound_reads_so_whichever_way_it_was_stopped(page: Any, simulated: tuple[ServerProcess, dict[str, str]]) -> None:
    """A run stopped because it was bound to pass its bound (predictive stop, LSTS's default)
    shows as stopped by the cost bound, as one that passed it does, not as out of epochs."""
    server, _ = simulated
    problems = browser.PageProblems().watch(page)
    page.goto(f"{server.url}/")
    outcomes = page.evaluate(
        """async () => {
          const { outcomeOf } = await import("/static/dashboard/format.js");
          return ["cost_bound", "predicted_cost_bound", "max_epochs"].map((stop_reason) => outcomeOf({ status: "Succeeded", converged: false, stop_reason }));
        }"""
    )
    assert outcomes == ["cost_bound", "cost_bound", "max_epochs"]
    no_problems(problems)


def test_what_if_refusal_and_api_docs_render_offline(page: Any, tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'bso.db'}", tmp_path, "--trial-lease-seconds", str(LEASE_SECONDS)) as server:
        script_mixed_job(server.url)
        problems = browser.PageProblems().watch(page)
        page.goto(f"{server.url}/ui/jobs/{MIXED_JOB}")
        wait_rendered(page, read(server, f"/v1/jobs/{MIXED_JOB}")["version"])
        open_what_if(page)
        page.fill("#whatif-form input[name=eta_knob]", "1.5")
        submit_what_if(page)
        assert "eta_knob" in page.locator("#whatif-error").inner_text()
        assert problems.error_responses == [(422, f"{server.url}/v1/jobs/{MIXED_JOB}/reanalysis")]
        problems.clear()

        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".opblock-summary-path[data-path='/v1/jobs/{job_id}/trials.csv']")
        assert page.locator(".opblock").count() >= 15
        no_problems(problems)


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
        no_problems(problems)
        context.close()

        fresh = chromium.new_context().new_page()  # another session: asked again
        fresh.goto(f"{server.url}/ui/jobs/{MIXED_JOB}")
        fresh.wait_for_selector("#token-form:not([hidden])")
        assert fresh.locator("canvas").count() == 0 or browser.chart_facts(fresh, "chart-batch-size") is None
        fresh.context.close()


def latest_version(server: ServerProcess, job: str) -> int:
    return read(server, f"/v1/jobs/{job}")["version"]


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with the scripted job (its last trial in flight) and three more jobs."""
    with running_server(f"sqlite:///{tmp_path / 'bso.db'}", tmp_path, "--trial-lease-seconds", str(LEASE_SECONDS)) as server:
        script_mixed_job(server.url)
        trainer = Trainer(server.url, None)
        for number in range(3):
            trainer.register({**MIXED_SPEC, "job_id": f"bulk-{number:02d}", "job_id_prefix": "bulk"})
        yield server


def test_pages_follow_a_running_job(page: Any, scripted: ServerProcess) -> None:
    server = scripted
    trainer = Trainer(server.url, None)
    problems = browser.PageProblems().watch(page)
    page.goto(f"{server.url}/ui/jobs/{MIXED_JOB}")
    version = latest_version(server, MIXED_JOB)
    wait_rendered(page, version)
    page.evaluate("window.neverReloaded = true")  # gone if the page were loaded again
    assert page.locator("#live-status").get_attribute("data-following") == "true"

    # The trial in flight says how long ago it was last heard of, and the age ticks.
    heard = page.locator("#in-flight .age").first.inner_text()
    assert re.fullmatch(r"last heard \d+ (s|min) ago", heard), heard
    page.wait_for_function("(before) => document.querySelector('#in-flight .age').textContent !== before", arg=heard, timeout=5_000)

    # A trial dispatched and reported through the API: the open page shows it, without reload.
    trial = trainer.predict(MIXED_JOB)
    seconds, joules, gain = WORKLOAD[trial["batch_size"]]
    trainer.report(MIXED_JOB, trial, 1, seconds, joules, gain)
    moved = latest_version(server, MIXED_JOB)
    assert moved > version
    page.wait_for_selector(f"#view[data-rendered='version-{moved}']", timeout=LIVE_WAIT_MS)
    assert page.evaluate("window.neverReloaded") is True
    assert page.locator("#tt-status").inner_text().startswith(f"showing version {moved} of {moved}")
    number = trial["trial_number"]
    running = page.locator(f"#in-flight .in-flight[data-trial='{number}']").inner_text()
    assert re.search(r"running, last heard \d+ s ago \(epoch 1\)", running), running
    row = page.locator(f"#trials tbody tr[data-trial='{number}']")
    assert row.locator("td.epochs").inner_text() == "1" and "last heard" in row.locator("td.outcome").inner_text()

    # Time-travelling, the page stays where the user put it and says the job moved on.
    page.fill("#tt-version", "12")
    page.click("#tt-go")
    wait_rendered(page, 12)
    trainer.predict(MIXED_JOB)
    later = latest_version(server, MIXED_JOB)
    page.wait_for_selector(f"#live-status[data-following='false']:has-text('at version {later} now')", timeout=LIVE_WAIT_MS)
    assert page.locator("#view").get_attribute("data-rendered") == "version-12" and "version=12" in page.url
    assert page.locator("#tt-status").inner_text().startswith(f"showing version 12 of {later}")
    assert page.locator("#answers h2").inner_text().startswith(f"Now (version {later}, the latest")  # always current

    # The job list follows too: the job's row changes when it moves.
    page.goto(f"{server.url}/?prefix=mixed")
    page.wait_for_selector(f"#jobs tbody tr[data-job='{MIXED_JOB}']")
    page.evaluate("window.neverReloaded = true")
    cell = f"#jobs tbody tr[data-job='{MIXED_JOB}'] td[data-column='trials']"
    before = page.locator(cell).inner_text()
    trainer.predict(MIXED_JOB)
    page.wait_for_function("([cell, before]) => document.querySelector(cell).textContent !== before", arg=[cell, before], timeout=LIVE_WAIT_MS)
    assert page.evaluate("window.neverReloaded") is True
    total = read(server, f"/v1/jobs/{MIXED_JOB}")["trials"]["total"]
    assert page.locator(cell).inner_text().startswith(f"{total} (")
    no_problems(problems)


def test_later_answers_win_and_loading_shows(page: Any, scripted: ServerProcess) -> None:
    """Each slow request is held (page.route) until a later one of its kind has been drawn,
    then let go: its answer is dropped, and the loading indicator showed only while pending."""
    server = scripted
    problems = browser.PageProblems().watch(page)
    held: list[Any] = []

    def hold(route: Any) -> None:
        held.append(route)

    def wait_held(count: int) -> None:
        for _ in range(100):  # the route handler runs while Playwright waits: at most 5 s
            if len(held) >= count:
                return
            page.wait_for_timeout(50)
        raise AssertionError(f"{len(held)} requests held, expected {count}")

    def release() -> None:
        before = dropped(page)
        while held:
            held.pop().continue_()
        page.wait_for_function(f"Number(document.documentElement.dataset.dropped || 0) > {before}")

    # Time travel: to version 12 (held), then to 20; 20 stays, URL included.
    page.goto(f"{server.url}/ui/jobs/{MIXED_JOB}")
    wait_rendered(page, latest_version(server, MIXED_JOB))
    assert page.locator("#tt-loading").is_hidden()
    slow = re.compile(r"[?&]version=12(&|$)")
    page.route(slow, hold)
    page.fill("#tt-version", "12")
    page.click("#tt-go")
    page.wait_for_selector("#tt-loading:has-text('Loading version 12')", state="visible")
    wait_held(3)  # the state, the trials and the explorations at version 12
    page.fill("#tt-version", "20")
    page.click("#tt-go")
    wait_rendered(page, 20)
    assert page.locator("#tt-loading").is_hidden()
    release()
    page.unroute(slow)
    assert page.locator("#view").get_attribute("data-rendered") == "version-20"
    assert page.url.endswith("?version=20") and page.input_value("#tt-version") == "20"
    assert page.locator("#tt-status").inner_text().startswith("showing version 20 of ")
    batch_size = browser.chart_facts(page, "chart-batch-size")
    assert sum(browser.points_by_outcome(batch_size).values()) == len(read(server, f"/v1/jobs/{MIXED_JOB}/trials", version=20)["trials"])

    # What-if: eta 0.9 (held), then 0.7; the answer shown is 0.7's.
    open_what_if(page)
    page.route("**/reanalysis", lambda route: route.continue_() if held else hold(route))
    page.fill("#whatif-form input[name=eta_knob]", "0.9")
    page.click("#whatif-form button[type=submit]")
    page.wait_for_selector("#whatif-loading", state="visible")
    wait_held(1)
    page.fill("#whatif-form input[name=eta_knob]", "0.7")
    submit_what_if(page)
    assert page.locator("#whatif-loading").is_hidden()
    release()
    page.unroute("**/reanalysis")
    assert json.loads(page.locator("#whatif-result").get_attribute("data-knobs")) == {"eta_knob": 0.7}
    assert page.locator("#whatif-result").get_attribute("class") in ("", None)

    # The list: sorted by job id (held), then by policy; the policy sort stays, URL included.
    page.goto(f"{server.url}/")
    page.wait_for_selector("#jobs tbody tr")
    assert page.locator("#list-loading").is_hidden()
    by_id = re.compile(r"/v1/jobs\?.*sort=job_id")
    page.route(by_id, hold)
    page.click("#jobs th[data-sort='job_id'] button")
    page.wait_for_selector("#list-loading", state="visible")
    wait_held(1)
    assert "pending" in page.locator("#jobs-box").get_attribute("class")
    page.click("#jobs th[data-sort='policy'] button")
    page.wait_for_selector("#jobs th[data-sort='policy'][aria-sort='ascending']")
    assert page.locator("#list-loading").is_hidden()
    release()
    page.unroute(by_id)
    assert page.locator("#jobs th[data-sort='policy']").get_attribute("aria-sort") == "ascending"
    assert page.locator("#jobs th[data-sort='job_id']").get_attribute("aria-sort") == "none"
    assert "sort=policy" in page.url and "sort=job_id" not in page.url
    assert job_rows(page) == [job["job_id"] for job in read(server, "/v1/jobs", sort="policy", limit=50)["jobs"]]
    no_problems(problems)


BIG_TRIALS = 3_000


@pytest.fixture(scope="module")
def big_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server on a SQLite file holding one job of BIG_TRIALS trials, written in process by the
    application (bench/dashboard.py's history: each run reports its last epoch only, some ended)."""
    from bench.dashboard import JOB_SPEC, build_history
    from infrastructure import sqlite_store

    scratch = tmp_path_factory.mktemp("big")
    database_url = f"sqlite:///{scratch / 'bso.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite_store, "SYNCHRONOUS", "OFF")  # a throw-away file: no fsync per event
        build_history(database_url, BIG_TRIALS, 0)
    with running_server(database_url, scratch) as server:
        yield server, JOB_SPEC["job_id"]


# JavaScript run in the page: a chart's draw order (the last drawn is on top), the number of
# trials each trial series stands for, and whether the y axis has room for its title.
CHART_LAYOUT = """(id) => {
  const chart = window.Chart.getChart(document.getElementById(id));
  const y = chart.scales.y;
  const ctx = chart.ctx;
  ctx.save();
  ctx.font = window.Chart.helpers.toFont(y.options.title.font).string;
  const titleWidth = ctx.measureText(y.options.title.text).width;
  ctx.restore();
  return {
    drawnInOrder: chart.getSortedVisibleDatasetMetas().map((meta) => chart.data.datasets[meta.index].label).reverse(),
    totals: chart.data.datasets.filter((d) => d.outcome).map((d) => d.total),
    subtitle: [].concat(chart.options.plugins.subtitle.text).join(" "),
    yHeight: y.height,
    titleWidth,
  };
}"""

# JavaScript run in the page: whether a chart has followed its box's width (after a resize).
RESIZED = """(id) => {
  const chart = window.Chart.getChart(document.getElementById(id));
  const box = chart.canvas.parentNode;
  const style = getComputedStyle(box);
  return Math.abs(chart.width - (box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight))) < 2;
}"""

# JavaScript run in the page: the share of the threshold line's last step (its pixels along
# the line, a pixel either side) that shows the line's red, i.e. is not hidden under points.
THRESHOLD_INK = """(label) => {
  const canvas = document.getElementById("chart-cost");
  const chart = window.Chart.getChart(canvas);
  const line = chart.data.datasets.find((d) => d.label === label).data;
  const [from, to] = line.slice(-2);  // stepped: level at from.y until to.x
  const ratio = canvas.width / canvas.clientWidth;
  const y = Math.round(chart.scales.y.getPixelForValue(from.y) * ratio);
  const left = Math.round(chart.scales.x.getPixelForValue(from.x) * ratio);
  const right = Math.round(chart.scales.x.getPixelForValue(to.x) * ratio);
  const pixels = canvas.getContext("2d").getImageData(left, y - 1, right - left, 3).data;
  let red = 0;
  for (let x = 0; x < right - left; x += 1) {
    for (let row = 0; row < 3; row += 1) {
      const at = (row * (right - left) + x) * 4;
      if (pixels[at] > 180 && pixels[at + 1] < 110 && pixels[at + 2] < 110) { red += 1; break; }
    }
  }
  return red / (right - left);
}"""


def test_big_job_draws_few_points_with_its_lines_on_top(page: Any, big_job: tuple[ServerProcess, str]) -> None:
    server, job = big_job
    problems = browser.PageProblems().watch(page)
    page.goto(f"{server.url}/ui/jobs/{job}")
    page.wait_for_selector(f"#view[data-rendered='version-{latest_version(server, job)}']", timeout=120_000)  # a fresh server folds the stream
    trials = read(server, f"/v1/jobs/{job}/trials", limit=1000)["trials"]  # the first page is enough for the table
    assert trials[0]["epoch"] > trials[0]["epochs_reported"] == 1  # the history reports the last epoch only

    for chart in ("chart-batch-size", "chart-cost"):
        facts = browser.chart_facts(page, chart)
        layout = page.evaluate(CHART_LAYOUT, chart)
        series = [dataset for dataset in facts["datasets"] if dataset["outcome"]]
        assert max(dataset["points"] for dataset in series) <= MAX_POINTS
        assert sum(dataset["points"] for dataset in series) < 0.9 * sum(layout["totals"])
        assert layout["subtitle"].startswith(f"{sum(layout['totals']):,} trials drawn as ")
        # Series under the cap (the rarer outcomes) are drawn whole.
        assert all(dataset["points"] == total for dataset, total in zip(series, layout["totals"]) if total <= MAX_POINTS)
    state = read(server, f"/v1/jobs/{job}")
    assert sum(layout["totals"]) == BIG_TRIALS - state["trials"]["failed"]  # every trial with a cost

    # The running min cost and the stop threshold are drawn after (over) every point, and the
    # threshold's last step shows red along much of its length (dashed: 6 on, 4 off).
    threshold = f"stop threshold (beta {state['spec']['beta_knob']:g} × min cost)"
    assert set(layout["drawnInOrder"][-2:]) == {"running min cost", threshold}
    assert page.evaluate(THRESHOLD_INK, threshold) > 0.4

    # The table's epochs are the runs' epochs, not their number of reports.
    for trial in trials[:5]:
        epochs = "–" if trial["epoch"] is None else str(trial["epoch"])
        assert page.locator(f"#trials tbody tr[data-trial='{trial['number']}'] td.epochs").inner_text() == epochs

    # The cost axis has room for its title, wide and narrow; the page fits 800 px.
    assert layout["yHeight"] >= layout["titleWidth"]
    assert_fits(page, NARROW, max_height=5_000)
    page.wait_for_function(RESIZED, arg="chart-cost")
    narrow = page.evaluate(CHART_LAYOUT, "chart-cost")
    assert narrow["yHeight"] >= narrow["titleWidth"]
    no_problems(problems)
