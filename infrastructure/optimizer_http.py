"""A trainer's HTTP client for the Zeus-compatible routes (of this server or Zeus's)."""

import json
from typing import Any

import httpx

from domain.reporting import EpochReport


class RemoteOptimizerError(RuntimeError):
    """The server answered a request with an error status, or could not be reached."""


class HttpOptimizerClient:
    """Sends bodies as raw JSON without a Content-Type, exactly as Zeus's client does."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    @classmethod
    def connect(cls, url: str, timeout: float = 30.0) -> "HttpOptimizerClient":
        return cls(httpx.Client(base_url=url.rstrip("/"), timeout=timeout))

    def close(self) -> None:
        self.http.close()

    def register(self, spec: dict[str, Any]) -> str:
        return self._call("POST", "/jobs", content=json.dumps(spec))["job_id"]

    def predict(self, job_id: str) -> tuple[int, int]:
        answer = self._call("GET", "/jobs/batch_size", params={"job_id": job_id})
        return answer["batch_size"], answer["trial_number"]

    def report(self, job_id: str, report: EpochReport) -> dict[str, Any]:
        body = {
            "job_id": job_id,
            "trial_number": report.trial_number,
            "batch_size": report.batch_size,
            "time": report.time,
            "energy": report.energy,
            "metric": report.metric,
            "current_epoch": report.epoch,
        }
        return self._call("POST", "/report", content=json.dumps(body))

    def run_cost_bound(self, job_id: str, trial_number: int) -> float | None:
        """The bound the service decided for the trial, from its audit view."""
        trial = self._call("GET", f"/v1/jobs/{job_id}/trials/{trial_number}")
        return trial["cost_bound"]

    def end_trial(self, job_id: str, trial_number: int, batch_size: int) -> None:
        body = {"job_id": job_id, "trial_number": trial_number, "batch_size": batch_size}
        self._call("PATCH", "/trials", content=json.dumps(body))

    def _call(self, method: str, path: str, **options: Any) -> Any:
        """The answer's JSON; no answer at all (refused, unreachable, timed out) is one line too."""
        try:
            response = self.http.request(method, path, **options)
        except httpx.TransportError as error:
            raise RemoteOptimizerError(f"{method} {self.http.base_url.join(path)} got no answer: {error}") from None
        return self._checked(response)

    @staticmethod
    def _checked(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise RemoteOptimizerError(
                f"{response.request.method} {response.request.url.path} answered "
                f"{response.status_code}: {response.text[:500]}"
            )
        return response.json()
