"""bench.load end to end on a small load: every request answered, rounds summarised by their median."""

import json
import statistics
import subprocess
import sys
from pathlib import Path


def test_load_rounds_report_each_round_and_their_median() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.load", "--jobs", "2", "--trials", "2", "--concurrency", "2", "--rounds", "3"],
        capture_output=True, text=True, timeout=180, cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    rounds, median = document["rounds"], document["median_of_rounds"]
    # 2 jobs x 2 trials x (predict, 3 reports, end trial) per round, all answered 200.
    assert [measured["requests"] for measured in rounds] == [20, 20, 20]
    assert all(measured["work_done"] for measured in rounds) and median["errors"] == 0
    assert median["throughput_rps"] == round(statistics.median(r["throughput_rps"] for r in rounds), 3)
    assert median["all_routes"]["p99_ms"] == round(statistics.median(r["all_routes"]["p99_ms"] for r in rounds), 3)
