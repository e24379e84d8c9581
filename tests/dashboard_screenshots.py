"""Screenshots of the dashboard for the README, from a throw-away server and Chromium.

    python -m tests.dashboard_screenshots docs/

Populates a fresh SQLite server as the browser tests do (``bso simulate --url`` under
each policy and the scripted job with every outcome), then saves the job list with the
fleet's totals, the scripted (Zeus) job's page (also at 800 px wide), the simulated LSTS
job's page and a what-if result: the simulated Zeus job replayed under LSTS.
"""

import sys
import tempfile
from pathlib import Path

from tests import browser
from tests.dashboard_data import LEASE_SECONDS, MIXED_JOB, MIXED_SPEC, Trainer, populate, simulate
from tests.servers import running_server

LSTS_TELEMETRY_TRIAL = 7


def main(folder: Path) -> None:
    problem = browser.why_unavailable()
    if problem:
        raise SystemExit(problem)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, running_server(
        f"sqlite:///{scratch}/bso.db", Path(scratch), "--trial-lease-seconds", str(LEASE_SECONDS)
    ) as server, browser.chromium() as chromium:
        jobs = populate(server.url)
        simulate(server.url, "cifar100", "v100", 30)
        simulate(server.url, "imagenet", "rtx6000", 20)
        trainer = Trainer(server.url, None)  # a job still pruning
        trainer.register({**MIXED_SPEC, "job_id": "nightly-resnet", "job_id_prefix": "nightly", "num_pruning_rounds": 2})
        for _ in range(2):
            trainer.train("nightly-resnet", trainer.predict("nightly-resnet"))
        page = chromium.new_page(viewport={"width": 1400, "height": 420})
        problems = browser.PageProblems().watch(page)
        page.goto(f"{server.url}/?sort=-savings_fraction")
        page.wait_for_selector("#fleet[data-loaded]")
        page.screenshot(path=folder / "dashboard-list.png", full_page=True)
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(f"{server.url}/ui/jobs/{MIXED_JOB}")
        page.wait_for_selector("#view[data-rendered]")
        page.screenshot(path=folder / "dashboard-job.png", full_page=True)
        page.set_viewport_size({"width": 800, "height": 900})
        page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth")
        page.wait_for_timeout(300)  # the charts follow the new width on their next frame
        page.screenshot(path=folder / "dashboard-job-800.png", full_page=True)
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(f"{server.url}/ui/jobs/{jobs.lsts_job}")
        page.wait_for_selector("#view[data-rendered]")
        page.click(f"#trials tbody tr[data-trial='{LSTS_TELEMETRY_TRIAL}']")  # a bandit run, with its bound
        page.wait_for_function(f"window.Chart.getChart(document.getElementById('chart-telemetry')).options.plugins.title.text.startsWith('Trial {LSTS_TELEMETRY_TRIAL} ')")
        page.screenshot(path=folder / "dashboard-job-lsts.png", full_page=True)
        page.goto(f"{server.url}/ui/jobs/{jobs.simulated_job}")
        page.wait_for_selector("#view[data-rendered]")
        page.click("#whatif-details > summary")  # the form is folded away until wanted
        page.select_option("#whatif-form select[name=policy]", "lsts")
        page.click("#whatif-form button[type=submit]")
        page.wait_for_selector("#whatif-result:not(.pending) #whatif-caveats")
        page.locator("section.whatif").screenshot(path=folder / "dashboard-what-if.png")
        # A poll in flight when the script moved to another page is cut short: no problem.
        problems.failed_requests[:] = [failure for failure in problems.failed_requests if not failure.endswith("net::ERR_ABORTED")]
        problems.assert_none()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
