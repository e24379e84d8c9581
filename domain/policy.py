"""What a policy is to a job, and which policies there are.

A policy chooses batch sizes. The Job aggregate holds the trials, records the events and
applies the stop rule's guards (``domain.bounds``); it knows its policy only through the
protocol below, so a new policy is one new module registered in ``POLICIES``.

The protocol has three parts:

- decide: ``decide`` the next trial (its batch size, kind, reason, random draws and the
  basis of its cost bound) and ``bound_basis``, the basis the next trial would get now;
- observe: ``observe`` what a finished trial changes, as records the job stores in its events;
- describe: ``describe`` the policy's state for the views.

Because jobs are event-sourced, a policy's state changes only in ``apply``, which is given
each fact as the job's events apply it (``PolicyFact``) and only assigns what the fact says.
Decisions read the job through ``JobFacts``, never change it, and get their randomness as
the recorded generator state.
"""

from array import array
from dataclasses import dataclass
from typing import Any, Protocol

from domain.bounds import BoundBasis
from domain.enums import Stage, TrialKind
from domain.spec import JobSpec


class JobFacts(Protocol):
    """What a policy may read of its job."""

    spec: JobSpec
    min_cost: float | None
    min_cost_batch_size: int
    generator_state: dict[str, Any]

    def trial_batch_size(self, number: int) -> int: ...

    def rewards_of(self, batch_size: int) -> array:
        """A copy of -cost of the size's reported trials (converged or not), by trial number."""

    def recent_converged_costs(self, batch_size: int | None, count: int) -> list[float]:
        """Costs of the last ``count`` converged trials (of one size, or of any), in trial order."""


@dataclass(frozen=True)
class StageAdvance:
    """A policy leaving its first stage for its bandit, with the arms it starts from."""

    survivors: list[int]
    arms: list[dict[str, Any]]


@dataclass(frozen=True)
class Decision:
    """The next trial, and everything about it that the TrialDispatched event records."""

    batch_size: int
    kind: TrialKind
    reason: dict[str, Any]
    cost_bound: float | None  # fixed at dispatch, before escalation; None: judged at each report, or no bound
    generator_state: dict[str, Any] | None = None  # after the draws; None: nothing drawn
    step: dict[str, Any] | None = None  # the policy's own change at dispatch (LSTS: the walk's step)
    advance: StageAdvance | None = None  # recorded before the trial (Zeus's switch to its bandit)


@dataclass(frozen=True)
class Observation:
    """What a finished trial changes in the policy: ``arm`` goes into the TrialReported event
    (Zeus's refitted arm, as Zeus's events always held it), ``record`` into a PolicyObserved."""

    arm: dict[str, Any] | None = None
    record: dict[str, Any] | None = None


# The facts a policy's state is told of, as the job's events apply them.
@dataclass(frozen=True)
class Dispatched:
    number: int
    batch_size: int
    kind: TrialKind
    step: dict[str, Any] | None


@dataclass(frozen=True)
class Finished:
    """A trial's final report."""

    number: int
    batch_size: int
    converged: bool
    cost: float
    arm: dict[str, Any] | None


@dataclass(frozen=True)
class Abandoned:
    """A trial ended by its trainer or expired, before its final report."""

    number: int
    batch_size: int


@dataclass(frozen=True)
class Advanced:
    advance: StageAdvance


@dataclass(frozen=True)
class Observed:
    number: int
    record: dict[str, Any]


PolicyFact = Dispatched | Finished | Abandoned | Advanced | Observed


class Policy(Protocol):
    name: str
    version: int  # recorded at registration: a change of decisions gets a new one
    # True: a trial's bound is set when it is dispatched; False: judged against the
    # reference as of each report (the job then records only the escalation).
    bounds_fixed_at_dispatch: bool

    def initial_state(self, spec: JobSpec) -> Any: ...

    def copy_state(self, state: Any) -> Any:
        """A copy as deep as ``apply`` changes the state in place (the aggregate cache copies jobs)."""

    def stage(self, state: Any) -> Stage: ...

    def decide(self, state: Any, job: JobFacts) -> Decision: ...

    def bound_basis(self, state: Any, job: JobFacts) -> BoundBasis:
        """The basis of the cost bound the next trial would get now."""

    def observe(
        self,
        state: Any,
        job: JobFacts,
        number: int,
        kind: TrialKind,
        converged: bool,
        cost: float | None,
        reported: bool,
    ) -> Observation:
        """What a finished trial changes: reported (``cost`` its final cost), or ended or expired
        (not converged, ``cost`` the last reported or None)."""

    def apply(self, state: Any, fact: PolicyFact) -> None: ...

    def describe(self, state: Any, job: JobFacts) -> dict[str, Any]:
        """The policy's part of a job's state view (JSON primitives)."""
