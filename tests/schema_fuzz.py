"""Schema fuzzing of a served bso with schemathesis: every operation of its /openapi.json, all checks.

Shared by the test suite (``tests/test_schema_fuzz.py``, few examples, fixed seed) and
``bench/fuzz.py`` (many examples, a random seed).
"""

import json
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import httpx
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from schemathesis.checks import positive_data_acceptance

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SERVER_ENV = {"BSO_AUTH_TOKEN": TOKEN}
SEEDED_JOB = {
    "job_id": "fuzz-1", "job_id_prefix": "fuzz", "batch_sizes": [8, 16, 32], "default_batch_size": 16,
    "max_epochs": 3, "max_power": 300, "number_of_gpus": 1, "gpu_model": "V100", "mab_seed": 1,
}


@dataclass
class FuzzResult:
    examples: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def seed_history(url: str) -> None:
    """A job with a finished, a failed and a running trial, so that reads have something to show."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as http:
        http.post("/jobs", content=json.dumps(SEEDED_JOB)).raise_for_status()
        for metric in (0.9, None, 0.1):
            trial = http.get("/jobs/batch_size", params={"job_id": "fuzz-1"}).json()
            if metric is None:
                http.patch("/trials", content=json.dumps(trial)).raise_for_status()
                continue
            report = {**trial, "time": 10.0, "energy": 100.0, "metric": metric, "current_epoch": 1}
            http.post("/report", content=json.dumps(report)).raise_for_status()


def fuzz(url: str, max_examples: int, seed: int) -> FuzzResult:
    """Run every operation's generated cases against the server at ``url``; collect failures."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    schema.config.update(base_url=url)
    # A schema-valid request may still be refused by the domain: 400 (Zeus's answer for an
    # unknown job or trial), 404 and 409 are such answers, not schema gaps.
    schema.config.checks.positive_data_acceptance.expected_statuses = ["2XX", "400", "401", "404", "409"]
    result = FuzzResult()
    for operation in schema.get_all_operations():
        _fuzz_operation(operation.ok(), max_examples, seed, result)
    return result


# Rules across fields that JSON Schema cannot state (default_batch_size must be one of
# batch_sizes; a job_id must start with its prefix; knobs merged into the recorded spec;
# version or at, not both): schema-valid requests of these operations may get a 422, so
# that one check is left out there.
CROSS_FIELD_RULES = {
    "POST /jobs",
    "POST /v1/jobs/{job_id}/reanalysis",
    "GET /v1/jobs/{job_id}/state",
    "GET /v1/jobs/{job_id}/trials",
    "GET /v1/jobs/{job_id}/trials.csv",
}


def _cases(operation: Any) -> Any:
    """Schema-valid and schema-invalid cases; for a job's reads also cases about the seeded job,
    so that its answers (not only 404s) are checked against their schemas."""
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    if "{job_id}" in operation.path:
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters={"job_id": SEEDED_JOB["job_id"]})
            for mode in modes
        ]
    return st.one_of(strategies)


def _fuzz_operation(operation: Any, max_examples: int, seed: int, result: FuzzResult) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    excluded = [positive_data_acceptance] if label in CROSS_FIELD_RULES else []

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=_cases(operation))
    def run(case: Any) -> None:
        result.examples += 1
        try:
            response = case.call_and_validate(headers=AUTH, excluded_checks=excluded)
            key = f"{label} {response.status_code}"
            result.statuses[key] = result.statuses.get(key, 0) + 1
        except BaseExceptionGroup as failure:  # each failing case is recorded, and the run goes on
            result.failures.append(f"{label}: {str(failure).strip()[:2000]}")

    run()
