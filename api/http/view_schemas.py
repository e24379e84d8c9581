"""What the ``/v1`` reads answer, as pydantic models: for the OpenAPI document only.

The views are built as plain dicts by ``application.audit`` and
``application.reanalysis``; these models state their shape so that clients (and
the schema fuzzing test) can check every answer. Numbers are nullable wherever a
stored value may be non-finite (rendered as ``null``, see ``api.json_text``).
Fields that would let a reader predict a job's next random draws (seed, generator
states) are absent for callers not allowed to write.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict

Number = float | None
Object = dict[str, Any]


class _View(BaseModel):
    model_config = ConfigDict(extra="allow")


class TrialCounts(_View):
    total: int
    dispatched: int
    succeeded: int
    failed: int


class JobRow(_View):
    job_id: str
    job_uuid: str
    stage: str
    policy: str
    gpu_model: str
    default_batch_size: int
    recommended_batch_size: int
    settled: bool
    savings_fraction: Number  # None: the default batch size never converged
    trials: TrialCounts
    min_cost: Number
    min_cost_batch_size: int | None
    registered_at: str
    deleted: bool
    version: int
    cursor: int


class JobPage(_View):
    jobs: list[JobRow]
    next_after: int | None
    next_offset: int | None


class Recommendation(_View):
    batch_size: int
    mean_cost: Number
    observations: int
    rule: str


class Saving(_View):
    actual: Number
    default_estimate: Number
    saved: Number
    fraction: Number
    exploration_cost: Number


class Savings(_View):
    converged_recurrences: int
    energy: Saving
    time: Saving
    cost: Saving
    default_estimate_missing: str | None
    exploration_cost_missing: str | None


class JobSummary(_View):
    job_id: str
    job_uuid: str
    version: int
    policy: str
    gpu_model: str
    default_batch_size: int
    stage: str
    recommended_batch_size: int
    recommendation: Recommendation
    settled: bool
    settled_since_trial: int | None
    settled_after_trials: int
    savings: Savings


class FleetSaving(_View):
    actual: Number
    default_estimate: Number
    saved: Number
    fraction: Number


class FleetTotals(_View):
    jobs: int
    settled_jobs: int
    jobs_without_default_estimate: int
    energy: FleetSaving
    time: FleetSaving
    cost: FleetSaving


class FleetSummary(_View):
    overall: FleetTotals
    by_gpu_model: dict[str, FleetTotals]


class Arm(_View):
    batch_size: int
    mean: Number
    precision: float | None  # None (with precision_infinite true) for an arm known exactly
    num_observations: int


class Pruning(_View):
    round: int | None  # None once every round is done
    num_rounds: int
    survivors: list[int]
    default_batch_size: int | None


class JobState(_View):
    job_id: str
    job_uuid: str
    version: int
    deleted: bool
    registered_at: str
    updated_at: str
    spec: Object
    stage: str
    policy_version: int | None = None
    seed: int | None = None
    generator_state: Object | None = None
    min_cost: Number
    min_cost_batch_size: int | None
    trials: TrialCounts
    pruning: Pruning | None  # None for LSTS jobs (their walk is in "lsts")
    arms: list[Arm]
    recommendation: Recommendation
    early_stop: Object


class TrialRow(_View):
    number: int
    batch_size: int
    kind: str
    status: str
    epochs_reported: int
    epoch: int | None
    time: Number
    energy: Number
    metric: Number
    cost: Number
    converged: bool | None
    stop_reason: str | None
    dispatched_at: str
    finished_at: str | None


class TrialPage(_View):
    trials: list[TrialRow]
    next_after: int | None


class Epoch(_View):
    epoch: int
    time: Number
    energy: Number
    metric: Number
    cost: Number
    reported_at: str
    final: bool


class TrialDetail(TrialRow):
    why: Object
    epochs: list[Epoch]
    outcome: Object | None


class Event(_View):
    type: str
    version: int
    timestamp: str
    payload: Object


class EventPage(_View):
    events: list[Event]
    next_after: int | None


class ReanalysisReport(_View):
    job_id: str
    job_uuid: str
    knobs: Object
    resample_seed: int
    halted: str | None
    trials: list[Object]
    summary: Object


class Status(_View):
    status: str


VIEW_MODELS: list[type[BaseModel]] = [
    JobPage, JobState, JobSummary, FleetSummary, TrialPage, TrialDetail, EventPage, ReanalysisReport, Status,
]
