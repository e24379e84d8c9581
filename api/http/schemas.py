"""Request bodies of the Zeus-compatible routes, validated as Zeus's client expects.

Pydantic's lax mode coerces ``"32"`` to 32 as Zeus's server does; numbers are
also accepted where a string is expected (Zeus ran on pydantic v1, which did
that). Unknown fields are ignored. NaN and infinities are rejected, and whole
numbers stay within the stores' 64-bit range (``api.numbers.MAX_NUMBER``).
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from api.numbers import MAX_NUMBER

JOB_ID_PATTERN = r"^[A-Za-z0-9_.:@+=-]+$"
JobIdText = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=JOB_ID_PATTERN)]
PrefixText = Annotated[str, StringConstraints(min_length=1, max_length=110, pattern=JOB_ID_PATTERN)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, coerce_numbers_to_str=True)


class JobSpecFromClient(_Body):
    job_id: JobIdText | None = None
    job_id_prefix: PrefixText
    batch_sizes: list[Annotated[int, Field(gt=0, le=MAX_NUMBER)]] = Field(min_length=1, max_length=1024)
    default_batch_size: int = Field(gt=0, le=MAX_NUMBER)
    eta_knob: float = Field(default=0.5, ge=0.0, le=1.0)
    beta_knob: float | None = Field(default=2.0, gt=0.0)
    target_metric: float = 0.5
    higher_is_better_metric: bool = True
    max_epochs: int = Field(default=100, gt=0, le=MAX_NUMBER)
    num_pruning_rounds: int = Field(default=2, ge=0, le=MAX_NUMBER)
    window_size: int = Field(default=0, ge=0, le=MAX_NUMBER)
    mab_prior_mean: float = 0.0
    mab_prior_precision: float = Field(default=0.0, ge=0.0)
    mab_num_explorations: int = Field(default=2, ge=0, le=MAX_NUMBER)
    mab_seed: int | None = Field(default=None, ge=0, le=MAX_NUMBER)
    max_power: float = Field(gt=0.0)
    number_of_gpus: int = Field(gt=0, le=MAX_NUMBER)
    gpu_model: Annotated[str, StringConstraints(min_length=1, max_length=256)]

    @field_validator("batch_sizes")
    @classmethod
    def _sorted_and_distinct(cls, sizes: list[int]) -> list[int]:
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"batch_sizes must not repeat a value: {sizes}")
        return sorted(sizes)

    @model_validator(mode="after")
    def _consistent(self) -> "JobSpecFromClient":
        if self.default_batch_size not in self.batch_sizes:
            raise ValueError(
                f"default_batch_size({self.default_batch_size}) is not in batch_sizes({self.batch_sizes})"
            )
        if self.job_id is not None and not self.job_id.startswith(self.job_id_prefix):
            raise ValueError(f"job_id({self.job_id}) does not start with job_id_prefix({self.job_id_prefix})")
        if self.num_pruning_rounds == 0 and self.mab_num_explorations == 0:
            raise ValueError(
                "num_pruning_rounds=0 needs mab_num_explorations >= 1: with neither, the bandit "
                "would start with arms that have never been observed"
            )
        return self


class TrialId(_Body):
    job_id: JobIdText
    batch_size: int = Field(gt=0, le=MAX_NUMBER)
    trial_number: int = Field(gt=0, le=MAX_NUMBER)


class TrainingResult(TrialId):
    time: float = Field(ge=0.0)
    energy: float = Field(ge=0.0)
    metric: float
    current_epoch: int = Field(gt=0, le=MAX_NUMBER)


class ReportResponse(BaseModel):
    """What POST /report answers (documented in the OpenAPI document)."""

    stop_train: bool
    converged: bool
    message: str


class ErrorMessage(BaseModel):
    """Every error answer: a message, and for 422 the fields at fault."""

    message: str
    detail: list[dict[str, str]] | None = None
