"""A small Python client for the ``/v1`` reads of a bso server, for notebooks and scripts.

    from api.client import Client
    bso = Client("http://127.0.0.1:8000", token=None)
    trials = bso.trials_dataframe("my-job")     # pandas, the columns of trials.csv

Every method is one read (``events`` pages through them all); none changes a job.
A refused request raises ``BsoClientError`` with the server's message.
"""

import io
from typing import Any, Iterator

import httpx
import pandas as pd

from api.trial_table import TRIAL_COLUMNS


class BsoClientError(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message


class Client:
    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, **params: Any) -> httpx.Response:
        return self._checked(self.http.get(path, params={k: v for k, v in params.items() if v is not None}))

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.is_error:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise BsoClientError(response.status_code, message)
        return response

    def jobs(self, prefix: str = "", page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every job whose id starts with ``prefix``, in registration order, a page at a time."""
        after = 0
        while True:
            page = self._get("/v1/jobs", prefix=prefix, limit=page_size, after=after).json()
            yield from page["jobs"]
            if page["next_after"] is None:
                return
            after = page["next_after"]

    def job(self, job_id: str, version: int | None = None, at: str | None = None) -> dict[str, Any]:
        """The job's state now, right after event ``version``, or at the ISO-8601 instant ``at``."""
        if version is None and at is None:
            return self._get(f"/v1/jobs/{job_id}").json()
        return self._get(f"/v1/jobs/{job_id}/state", version=version, at=at).json()

    def trial(self, job_id: str, number: int) -> dict[str, Any]:
        """One trial with its per-epoch telemetry and the full recorded why."""
        return self._get(f"/v1/jobs/{job_id}/trials/{number}").json()

    def events(self, job_id: str, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every event of the job, in order."""
        events: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self._get(f"/v1/jobs/{job_id}/events", after=after, limit=page_size).json()
            events.extend(page["events"])
            if page["next_after"] is None:
                return events
            after = page["next_after"]

    def trials_dataframe(self, job_id: str, version: int | None = None, at: str | None = None) -> pd.DataFrame:
        """One row per trial, the columns of ``GET /v1/jobs/{id}/trials.csv``, typed; times are UTC."""
        text = self._get(f"/v1/jobs/{job_id}/trials.csv", version=version, at=at).text
        instants = [column.name for column in TRIAL_COLUMNS if column.dtype == "datetime"]
        dtypes = {column.name: column.dtype for column in TRIAL_COLUMNS if column.name not in instants}
        frame = pd.read_csv(io.StringIO(text), dtype=dtypes, keep_default_na=False, na_values=[""])
        for name in instants:
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
        return frame

    def reanalyze(self, job_id: str, **knobs: Any) -> dict[str, Any]:
        """What the policy would have done with other knobs (``eta_knob=0.7``, ``beta_knob=None``, ...)."""
        return self._checked(self.http.post(f"/v1/jobs/{job_id}/reanalysis", json=knobs)).json()
