"""Jobs for the dashboard tests, written to a real server over HTTP.

``populate`` runs ``bso simulate --url`` against the server twice (a job from the Zeus
traces under each policy, Zeus's and LSTS's, every trial reported once) and then scripts ``mixed-...``: a job whose
trials end in every way the dashboard colours (converged, stopped by the cost
bound, not converged within max epochs, ended, expired, in flight), each with
several per-epoch reports. Its expiry needs the server's lease to be short
(``LEASE_SECONDS``).
"""

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

LEASE_SECONDS = 2
MIXED_JOB = "mixed-dashboard"
MIXED_SPEC = {
    "job_id": MIXED_JOB,
    "job_id_prefix": "mixed",
    "batch_sizes": [8, 16, 32, 64],
    "default_batch_size": 32,
    "eta_knob": 0.5,
    "beta_knob": 2.0,
    "target_metric": 0.8,
    "higher_is_better_metric": True,
    "max_epochs": 6,
    "num_pruning_rounds": 1,
    "window_size": 0,
    "mab_prior_mean": 0.0,
    "mab_prior_precision": 0.0,
    "mab_num_explorations": 1,
    "mab_seed": 7,
    "max_power": 300.0,
    "number_of_gpus": 1,
    "gpu_model": "test",
}
# batch size -> (seconds per epoch, joules per epoch, metric gained per epoch). With
# beta 2: 32 and 16 converge (16 cheaper), 8 never reaches the target (max epochs),
# 64 costs more than twice the min cost by its second epoch (cost bound).
WORKLOAD = {8: (20.0, 2000.0, 0.1), 16: (50.0, 5000.0, 0.22), 32: (100.0, 10000.0, 0.3), 64: (300.0, 30000.0, 0.2)}
BANDIT_TRIALS = 6


@dataclass(frozen=True)
class Populated:
    simulated_job: str  # policy zeus
    simulated_trials: int
    mixed_job: str
    lsts_job: str  # the same workload under policy lsts


class Trainer:
    """Drives one job over HTTP as a training script would."""

    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30.0)

    def register(self, spec: dict) -> None:
        self.http.post("/jobs", content=json.dumps(spec)).raise_for_status()

    def predict(self, job_id: str) -> dict:
        answer = self.http.get("/jobs/batch_size", params={"job_id": job_id})
        answer.raise_for_status()
        return answer.json()

    def train(self, job_id: str, trial: dict, slowdown: float = 1.0) -> dict:
        """Report every epoch of ``WORKLOAD`` until the server says stop."""
        seconds, joules, gain = WORKLOAD[trial["batch_size"]]
        for epoch in range(1, MIXED_SPEC["max_epochs"] + 1):
            answer = self.report(job_id, trial, epoch, seconds * slowdown * epoch, joules * slowdown * epoch, min(1.0, gain * epoch))
            if answer["stop_train"]:
                return answer
        raise AssertionError(f"trial {trial} was never told to stop")

    def report(self, job_id: str, trial: dict, epoch: int, seconds: float, joules: float, metric: float) -> dict:
        body = {**trial, "job_id": job_id, "time": seconds, "energy": joules, "metric": metric, "current_epoch": epoch}
        answer = self.http.post("/report", content=json.dumps(body))
        answer.raise_for_status()
        return answer.json()

    def end(self, job_id: str, trial: dict) -> None:
        body = {"job_id": job_id, "batch_size": trial["batch_size"], "trial_number": trial["trial_number"]}
        self.http.patch("/trials", content=json.dumps(body)).raise_for_status()


def script_mixed_job(url: str, token: str | None = None) -> None:
    """Register and train ``MIXED_JOB``; its last trial stays in flight. Takes about LEASE_SECONDS."""
    trainer = Trainer(url, token)
    trainer.register(MIXED_SPEC)
    first = trainer.predict(MIXED_JOB)  # 32, pruning exploration
    stand_in = trainer.predict(MIXED_JOB)  # 32 again, concurrent while the first runs
    trainer.end(MIXED_JOB, stand_in)  # ended
    trainer.train(MIXED_JOB, first)  # converged
    for _ in range(3):  # 16 converges, 8 runs out of epochs, 64 hits the cost bound
        trainer.train(MIXED_JOB, trainer.predict(MIXED_JOB))
    for number in range(BANDIT_TRIALS):
        trainer.train(MIXED_JOB, trainer.predict(MIXED_JOB), slowdown=1 + number / 20)
    trainer.predict(MIXED_JOB)  # never heard from again: expires after the lease
    time.sleep(LEASE_SECONDS + 0.5)
    trainer.predict(MIXED_JOB)  # expires the silent one; this one stays in flight


def simulate(url: str, workload: str = "squad", gpu: str = "p100", recurrences: int = 24, policy: str = "zeus") -> tuple[str, int]:
    """``bso simulate --url`` against the server: the new job's id and its number of trials.

    The simulator's HTTP client sends no token, so the server must not need one.
    """
    command = [sys.executable, "-m", "api.cli", "simulate", "--workload", workload, "--gpu", gpu,
               "--recurrences", str(recurrences), "--policy", policy, "--url", url, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return result["job_id"], len(result["runs"])


def populate(url: str) -> Populated:
    simulated_job, simulated_trials = simulate(url)
    lsts_job, _ = simulate(url, policy="lsts")
    script_mixed_job(url)
    return Populated(simulated_job, simulated_trials, MIXED_JOB, lsts_job)
