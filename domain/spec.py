"""What a job is: the JobSpec value object, its invariants, its limits and its knobs.

Every way into the service (HTTP, the CLI, the simulator, an import, an in-process
caller) builds a job through ``JobSpec.create``, so no registration event can ever
describe a job that the policy cannot run. Specs read back from stored events are
trusted as written (``JobSpec.from_record``): a view of an old job never fails.

``FIELD_BOUNDS`` and ``DEFAULTS`` are the one statement of each field's rule; the HTTP
schema documents and pre-checks the same bounds by importing them.
"""

import math
import re
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any, Mapping

from domain.errors import InvalidSpecError
from domain.lsts import KNOB_BOUNDS, LstsKnobs

ZEUS = "zeus"  # Zeus's pruning then Gaussian Thompson sampling, decision for decision
LSTS = "lsts"  # local search then Thompson sampling with a pooled variance (POLICY.md)
POLICIES = (ZEUS, LSTS)
_LSTS = LstsKnobs()
LSTS_KNOB_NAMES = tuple(_LSTS.to_record())

JOB_ID_PATTERN = r"^[A-Za-z0-9_.:@+=-]+$"
MAX_JOB_ID_LENGTH = 128
MAX_PREFIX_LENGTH = 110  # leaves room for the "-xxxxxxxx" suffix of a generated id
MAX_GPU_MODEL_LENGTH = 256
MAX_BATCH_SIZE = 2**31 - 1
# Measurements and weights are bounded far above any real job so that no cost,
# reward, arm fit or bound computed from them can overflow a float.
MAX_POWER_WATTS = 1e9
MAX_PRIOR_MAGNITUDE = 1e30
MAX_INTEGER = 2**63 - 1  # what the stores' JSON keeps exactly (and the seed's range)

# Per numeric field: pydantic-style bounds (gt, ge, le) checked by JobSpec.create.
FIELD_BOUNDS: dict[str, dict[str, float]] = {
    "default_batch_size": {"gt": 0, "le": MAX_BATCH_SIZE},
    "eta_knob": {"ge": 0.0, "le": 1.0},
    "beta_knob": {"gt": 0.0},
    "max_epochs": {"gt": 0, "le": MAX_INTEGER},
    "num_pruning_rounds": {"ge": 0, "le": MAX_INTEGER},
    "window_size": {"ge": 0, "le": MAX_INTEGER},
    "mab_prior_mean": {"ge": -MAX_PRIOR_MAGNITUDE, "le": MAX_PRIOR_MAGNITUDE},
    "mab_prior_precision": {"ge": 0.0, "le": MAX_PRIOR_MAGNITUDE},
    "mab_num_explorations": {"ge": 0, "le": MAX_INTEGER},
    "mab_seed": {"ge": 0, "le": MAX_INTEGER},
    "stop_window": {"ge": 0, "le": MAX_INTEGER},
    "max_power": {"gt": 0.0, "le": MAX_POWER_WATTS},
    "number_of_gpus": {"gt": 0, "le": MAX_INTEGER},
    **KNOB_BOUNDS,  # LSTS's knobs (domain/lsts.py)
}


@dataclass(frozen=True)
class SpecLimits:
    """Sizes that drive the cost of serving a job, capped per server (BSO_MAX_* settings)."""

    batch_sizes: int = 64
    num_pruning_rounds: int = 10
    window_size: int = 10_000
    max_epochs: int = 100_000
    mab_num_explorations: int = 1_000
    stop_window: int = 10_000


_CAPPED_FIELDS = ("num_pruning_rounds", "window_size", "max_epochs", "mab_num_explorations", "stop_window")


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """A recurring training job as registered: its batch sizes, target, knobs and hardware."""

    job_id: str | None = None  # None until the service names the job
    job_id_prefix: str
    batch_sizes: tuple[int, ...]
    default_batch_size: int
    eta_knob: float = 0.5
    beta_knob: float | None = 2.0  # None: no early stopping by cost
    target_metric: float = 0.5
    higher_is_better_metric: bool = True
    max_epochs: int = 100
    num_pruning_rounds: int = 2
    window_size: int = 0  # 0: every observation counts
    mab_prior_mean: float = 0.0
    mab_prior_precision: float = 0.0
    mab_num_explorations: int = 2
    mab_seed: int | None = None  # None: the service draws one at registration
    max_power: float
    number_of_gpus: int
    gpu_model: str
    # The policy that decides for this job, for life; the knobs below are LSTS's (POLICY.md).
    policy: str = ZEUS
    tau: float = _LSTS.tau
    beta_explore: float = _LSTS.beta_explore
    beta_bandit: float = _LSTS.beta_bandit
    skip_up: bool = _LSTS.skip_up
    keep_tol: float = _LSTS.keep_tol
    n_min: int = _LSTS.n_min
    n_min_tol: float = _LSTS.n_min_tol
    s0: float = _LSTS.s0
    nu0: float = _LSTS.nu0
    fail_drop: int = _LSTS.fail_drop
    # The stop rule's guards (domain/bounds.py). None until ``create`` fills in the policy's
    # default, so that a stored spec always says what its job ran with.
    stop_window: int | None = None
    bound_escalation: bool | None = None
    predictive_stop: bool | None = None

    def lsts_knobs(self) -> LstsKnobs:
        return LstsKnobs(**{name: getattr(self, name) for name in LSTS_KNOB_NAMES})

    @classmethod
    def create(cls, data: Mapping[str, Any], limits: SpecLimits = SpecLimits()) -> "JobSpec":
        """A checked spec from field values (defaults fill what is missing); InvalidSpecError if impossible."""
        for name in REQUIRED_FIELDS:
            if data.get(name) is None:
                raise InvalidSpecError(name, "is required")
        given = {name: value for name, value in data.items() if name in DEFAULTS or name in REQUIRED_FIELDS}
        given["batch_sizes"] = _batch_sizes(given["batch_sizes"], limits)
        for name in _FLOAT_FIELDS & given.keys():
            if _is_int(given[name]):  # 300 and 300.0 are the same job
                given[name] = float(given[name])
        policy = given.get("policy", ZEUS)
        if policy not in POLICIES:
            raise InvalidSpecError("policy", f"must be one of {', '.join(POLICIES)}, got {policy!r}")
        for name, default in GUARD_DEFAULTS[policy].items():
            if given.get(name) is None:
                given[name] = default
        spec = cls(**given)
        spec._check(limits)
        return spec

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "JobSpec":
        """The spec as a stored event holds it, trusted as written (it was checked when stored)."""
        values = {name: value for name, value in record.items() if name in DEFAULTS or name in REQUIRED_FIELDS}
        values["batch_sizes"] = tuple(values["batch_sizes"])
        # Specs stored before the guards existed ran without them, whatever their policy.
        values.setdefault("stop_window", 0)
        values.setdefault("bound_escalation", False)
        values.setdefault("predictive_stop", False)
        return cls(**values)

    def to_record(self) -> dict[str, Any]:
        """JSON primitives in field order: the stored form and what registration answers."""
        record = asdict(self)
        record["batch_sizes"] = list(self.batch_sizes)
        return record

    def with_job_id(self, job_id: str) -> "JobSpec":
        spec = replace(self, job_id=job_id)
        spec._check_job_id()
        return spec

    def with_knobs(self, overrides: Mapping[str, Any], limits: SpecLimits = SpecLimits()) -> "JobSpec":
        """This job under other knobs (reanalysis); InvalidSpecError if the result is impossible."""
        unknown = sorted(set(overrides) - set(KNOB_NAMES))
        if unknown:
            raise InvalidSpecError(unknown[0], f"is not a knob (knobs: {', '.join(KNOB_NAMES)})")
        record = self.to_record()
        if overrides.get("policy", self.policy) != self.policy:
            # Under another policy, guards left unset are that policy's defaults, not this job's.
            for name in GUARD_DEFAULTS[ZEUS]:
                record.pop(name)
        # The job's name is not a knob: a job stored before names were checked stays reanalysable.
        changed = JobSpec.create({**record, **overrides, "job_id": None}, limits)
        return replace(changed, job_id=self.job_id, job_id_prefix=self.job_id_prefix)

    def knobs(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in KNOB_NAMES}

    # -- invariants -------------------------------------------------------------------

    def _check(self, limits: SpecLimits) -> None:
        _check_text("job_id_prefix", self.job_id_prefix, MAX_PREFIX_LENGTH, JOB_ID_PATTERN)
        _check_text("gpu_model", self.gpu_model, MAX_GPU_MODEL_LENGTH)
        for name, bounds in FIELD_BOUNDS.items():
            value = getattr(self, name)
            if value is not None or name not in _NULLABLE_FIELDS:
                _check_number(name, value, bounds)
        _check_number("target_metric", self.target_metric, {})
        for name in _CAPPED_FIELDS:
            if getattr(self, name) > getattr(limits, name):
                raise InvalidSpecError(name, f"is {getattr(self, name)}; this server allows at most {getattr(limits, name)}")
        for name in ("higher_is_better_metric", "bound_escalation", "predictive_stop"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidSpecError(name, "must be true or false")
        if self.default_batch_size not in self.batch_sizes:
            raise InvalidSpecError(
                "default_batch_size",
                f"default_batch_size({self.default_batch_size}) is not in batch_sizes({list(self.batch_sizes)})",
            )
        if self.num_pruning_rounds == 0 and self.mab_num_explorations == 0:
            raise InvalidSpecError(
                "mab_num_explorations",
                "num_pruning_rounds=0 needs mab_num_explorations >= 1: with neither, the bandit "
                "would start with arms that have never been observed",
            )
        if self.job_id is not None:
            self._check_job_id()
        if self.policy not in POLICIES:
            raise InvalidSpecError("policy", f"must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        self.lsts_knobs()  # checks its knobs, naming the one at fault

    def _check_job_id(self) -> None:
        assert self.job_id is not None
        _check_text("job_id", self.job_id, MAX_JOB_ID_LENGTH, JOB_ID_PATTERN)
        if not self.job_id.startswith(self.job_id_prefix):
            raise InvalidSpecError(
                "job_id", f"job_id({self.job_id}) does not start with job_id_prefix({self.job_id_prefix})"
            )


REQUIRED_FIELDS = tuple(spec_field.name for spec_field in fields(JobSpec) if spec_field.default is MISSING)
DEFAULTS: dict[str, Any] = {
    spec_field.name: spec_field.default for spec_field in fields(JobSpec) if spec_field.default is not MISSING
}
_INTEGER_FIELDS = frozenset(spec_field.name for spec_field in fields(JobSpec) if spec_field.type in (int, int | None))
_FLOAT_FIELDS = frozenset(spec_field.name for spec_field in fields(JobSpec) if spec_field.type in (float, float | None))
_NULLABLE_FIELDS = frozenset(("job_id", "beta_knob", "mab_seed"))

# The stop rule's guards each policy gets when the spec does not set them: Zeus's policy
# keeps Zeus's rule exactly; LSTS gets all three (docs/policies.md, "Costs that grow"; predictive stop
# by the policy benchmark: M 0.536 with it, 0.655 without, no cell worse than Zeus).
GUARD_DEFAULTS: dict[str, dict[str, Any]] = {
    ZEUS: {"stop_window": 0, "bound_escalation": False, "predictive_stop": False},
    LSTS: {"stop_window": 20, "bound_escalation": True, "predictive_stop": True},
}


@dataclass(frozen=True)
class Knob:
    """A setting a reanalysis may change. For most knobs null means "as recorded";
    where ``null_means`` says otherwise, null is a value of its own."""

    name: str
    type: type
    help: str
    null_means: str | None = None


KNOBS: tuple[Knob, ...] = (
    Knob("eta_knob", float, "weight of energy against time in the cost, 0 to 1"),
    Knob("beta_knob", float, "stop a run whose cost exceeds beta x the minimum cost", "early stopping off"),
    Knob("window_size", int, "bandit observations kept per batch size (0: all)"),
    Knob("mab_prior_mean", float, "prior mean reward of an arm"),
    Knob("mab_prior_precision", float, "prior precision of an arm (0: uninformative)"),
    Knob("mab_num_explorations", int, "runs per arm before Thompson sampling"),
    Knob("num_pruning_rounds", int, "pruning rounds before the bandit"),
    Knob("mab_seed", int, "seed of the bandit's generator (default: the job's own)"),
    Knob("policy", str, f"the policy that decides: {' or '.join(POLICIES)}"),
    Knob("tau", float, "LSTS: a direction stops at a size whose run costs more than (1 + tau) x best"),
    Knob("beta_explore", float, "LSTS: cost bound of exploration runs, x best"),
    Knob("beta_bandit", float, "LSTS: cost bound of bandit runs, x exp(min mean log cost)"),
    Knob("skip_up", bool, "LSTS: skip the upward walk when walking down found a cheaper size"),
    Knob("keep_tol", float, "LSTS: arms are explored sizes within (1 + keep_tol) x best"),
    Knob("n_min", int, "LSTS: competitive arms with fewer observations are played first"),
    Knob("n_min_tol", float, "LSTS: how close to the best mean an arm is competitive"),
    Knob("s0", float, "LSTS: prior standard deviation of log cost"),
    Knob("nu0", float, "LSTS: weight of the prior in the pooled variance"),
    Knob("fail_drop", int, "LSTS: failed bandit runs that remove an arm"),
    Knob("stop_window", int, "the stop rule's reference is the cheapest of the last N converged trials (0: all)"),
    Knob("bound_escalation", bool, "double a trial's cost bound for each trial stopped by the bound in a row"),
    Knob("predictive_stop", bool, "stop a run early whose cost is predicted to exceed its bound"),
)
KNOB_NAMES = tuple(knob.name for knob in KNOBS)


def knob_overrides(given: Mapping[str, Any]) -> dict[str, Any]:
    """The knobs a caller set, as overrides of the recorded spec (null: as recorded,
    except for a knob whose null has a meaning of its own)."""
    null_values = {knob.name for knob in KNOBS if knob.null_means is not None}
    return {name: value for name, value in given.items() if value is not None or name in null_values}


def _batch_sizes(value: Any, limits: SpecLimits) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidSpecError("batch_sizes", "must be a non-empty list of positive integers")
    if len(value) > limits.batch_sizes:
        raise InvalidSpecError(
            "batch_sizes", f"has {len(value)} sizes; this server allows at most {limits.batch_sizes}"
        )
    for size in value:
        if not _is_int(size) or not 0 < size <= MAX_BATCH_SIZE:
            raise InvalidSpecError("batch_sizes", f"must hold integers from 1 to {MAX_BATCH_SIZE}, got {size!r}")
    if len(set(value)) != len(value):
        raise InvalidSpecError("batch_sizes", f"batch_sizes must not repeat a value: {list(value)}")
    return tuple(sorted(value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_number(name: str, value: Any, bounds: Mapping[str, float]) -> None:
    if name in _INTEGER_FIELDS and not _is_int(value):
        raise InvalidSpecError(name, f"must be an integer, got {value!r}")
    if name not in _INTEGER_FIELDS and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise InvalidSpecError(name, f"must be a finite number, got {value!r}")
    if "gt" in bounds and not value > bounds["gt"]:
        raise InvalidSpecError(name, f"must be greater than {bounds['gt']}, got {value}")
    if "ge" in bounds and not value >= bounds["ge"]:
        raise InvalidSpecError(name, f"must be at least {bounds['ge']}, got {value}")
    if "le" in bounds and not value <= bounds["le"]:
        raise InvalidSpecError(name, f"must be at most {bounds['le']}, got {value}")


def _check_text(name: str, value: Any, max_length: int, pattern: str | None = None) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= max_length:
        raise InvalidSpecError(name, f"must be a string of 1 to {max_length} characters")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        raise InvalidSpecError(name, f"may only hold letters, digits and _.:@+=- (got {value!r})")
