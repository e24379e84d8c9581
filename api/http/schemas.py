"""Request bodies of the Zeus-compatible routes, validated as Zeus's client expects.

Pydantic's lax mode coerces ``"32"`` to 32 as Zeus's server does; numbers are
also accepted where a string is expected (Zeus ran on pydantic v1, which did
that). Unknown fields are ignored. NaN and infinities are rejected, and whole
numbers stay within the stores' 64-bit range (``api.numbers.MAX_NUMBER``).
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.reporting import MAX_COUNT, MAX_MEASUREMENT, EpochReport
from domain.spec import (
    DEFAULTS,
    FIELD_BOUNDS,
    JOB_ID_PATTERN,
    MAX_BATCH_SIZE,
    MAX_GPU_MODEL_LENGTH,
    MAX_JOB_ID_LENGTH,
    MAX_PREFIX_LENGTH,
)

JobIdText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_JOB_ID_LENGTH, pattern=JOB_ID_PATTERN)]
PrefixText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PREFIX_LENGTH, pattern=JOB_ID_PATTERN)]


def _bounded(name: str, **default: Any) -> Any:
    """A field with the domain's bounds for ``name`` (so the schema documents them)."""
    return Field(**default, **FIELD_BOUNDS.get(name, {}))


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, coerce_numbers_to_str=True)


class JobSpecFromClient(_Body):
    """Maps the JSON body onto the fields of domain.spec.JobSpec, which checks the job."""

    job_id: JobIdText | None = None
    job_id_prefix: PrefixText
    batch_sizes: list[Annotated[int, Field(gt=0, le=MAX_BATCH_SIZE)]] = Field(min_length=1)
    default_batch_size: int = _bounded("default_batch_size")
    eta_knob: float = _bounded("eta_knob", default=DEFAULTS["eta_knob"])
    beta_knob: float | None = _bounded("beta_knob", default=DEFAULTS["beta_knob"])
    target_metric: float = DEFAULTS["target_metric"]
    higher_is_better_metric: bool = DEFAULTS["higher_is_better_metric"]
    max_epochs: int = _bounded("max_epochs", default=DEFAULTS["max_epochs"])
    num_pruning_rounds: int = _bounded("num_pruning_rounds", default=DEFAULTS["num_pruning_rounds"])
    window_size: int = _bounded("window_size", default=DEFAULTS["window_size"])
    mab_prior_mean: float = _bounded("mab_prior_mean", default=DEFAULTS["mab_prior_mean"])
    mab_prior_precision: float = _bounded("mab_prior_precision", default=DEFAULTS["mab_prior_precision"])
    mab_num_explorations: int = _bounded("mab_num_explorations", default=DEFAULTS["mab_num_explorations"])
    mab_seed: int | None = _bounded("mab_seed", default=DEFAULTS["mab_seed"])
    max_power: float = _bounded("max_power")
    number_of_gpus: int = _bounded("number_of_gpus")
    gpu_model: Annotated[str, StringConstraints(min_length=1, max_length=MAX_GPU_MODEL_LENGTH)]
    # Never sent by Zeus's client: the server's default policy (BSO_DEFAULT_POLICY) then applies.
    policy: Literal["zeus", "lsts"] | None = None
    tau: float = _bounded("tau", default=DEFAULTS["tau"])
    beta_explore: float = _bounded("beta_explore", default=DEFAULTS["beta_explore"])
    beta_bandit: float = _bounded("beta_bandit", default=DEFAULTS["beta_bandit"])
    skip_up: bool = DEFAULTS["skip_up"]
    keep_tol: float = _bounded("keep_tol", default=DEFAULTS["keep_tol"])
    n_min: int = _bounded("n_min", default=DEFAULTS["n_min"])
    n_min_tol: float = _bounded("n_min_tol", default=DEFAULTS["n_min_tol"])
    s0: float = _bounded("s0", default=DEFAULTS["s0"])
    nu0: float = _bounded("nu0", default=DEFAULTS["nu0"])
    fail_drop: int = _bounded("fail_drop", default=DEFAULTS["fail_drop"])
    # The stop rule's guards; unset, the policy's defaults apply (zeus: 0, false, false; lsts: 20, true, true).
    stop_window: int | None = _bounded("stop_window", default=None)
    bound_escalation: bool | None = None
    predictive_stop: bool | None = None


class TrialId(_Body):
    job_id: JobIdText
    batch_size: int = Field(gt=0, le=MAX_BATCH_SIZE)
    trial_number: int = Field(gt=0, le=MAX_COUNT)


class TrainingResult(TrialId):
    """One epoch's report; the bounds are domain.reporting.EpochReport's."""

    time: float = Field(ge=0.0, le=MAX_MEASUREMENT)
    energy: float = Field(ge=0.0, le=MAX_MEASUREMENT)
    metric: float
    current_epoch: int = Field(gt=0, le=MAX_COUNT)

    def epoch_report(self) -> EpochReport:
        return EpochReport(self.trial_number, self.batch_size, self.time, self.energy, self.metric, self.current_epoch)


class ReportResponse(BaseModel):
    """What POST /report answers (documented in the OpenAPI document)."""

    stop_train: bool
    converged: bool
    message: str


class ErrorMessage(BaseModel):
    """Every error answer: a message, and for 422 the fields at fault."""

    message: str
    detail: list[dict[str, str]] | None = None
