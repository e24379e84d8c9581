"""The Job aggregate: one recurring training job and every trial it handed out.

The job holds the trials, records the events and applies the stop rule with its guards
(domain/bounds.py); which batch size a trial gets is its policy's decision
(domain/policy.py), and the job knows its policy only through that protocol.

Event ``apply`` methods only assign what the event says (and keep the bookkeeping that
follows from it); every decision (which batch size, the random draws, the cost bound, the
new minimum cost, an arm's refit) is made by a command method and carried in the event.

State is kept small and flat so that a job with 10,000 trials is as cheap to
copy out of the cache as a new one: per-trial facts live in chunked arrays of numbers,
and the rest is bounded by the number of batch sizes and of trials in flight.
"""

from array import array
from bisect import bisect_left, bisect_right
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.bandit import current_arm_record
from domain.bounds import BOUND_STOPS, BoundBasis, escalation_scale
from domain.chunked_array import ChunkedArray
from domain.enums import Stage, StopReason, TrialKind, TrialStatus
from domain.errors import BadOperationError, TrialAbandonedError, UnknownTrialError
from domain.lsts_policy import TRIAL_KINDS
from domain.policies import policy_named
from domain.policy import Abandoned, Advanced, Dispatched, Finished, Observed, Policy, StageAdvance
from domain.randomness import seeded_generator_state
from domain.reporting import (
    NO_BOUND,
    CostBound,
    EpochReport,
    StopRule,
    already_reported_message,
    cost_bound,
    judge_epoch,
)
from domain.spec import JobSpec


@dataclass(frozen=True)
class DispatchedTrial:
    number: int
    batch_size: int
    kind: TrialKind


@dataclass(frozen=True)
class ReportAnswer:
    stop_train: bool
    converged: bool
    message: str


def reward_array(items: Iterable[float] = ()) -> ChunkedArray:
    return ChunkedArray("d", items)


def number_array(items: Iterable[int] = ()) -> ChunkedArray:
    return ChunkedArray("q", items)


# A trial's status and, once its final report is in, how it ended: one byte per trial in
# Job.trial_outcomes. Trials stopped by the cost bound have their own code (from Job
# version 5 on) because the bound's escalation counts them.
_DISPATCHED, _CONVERGED, _NOT_CONVERGED, _FAILED, _STOPPED_BY_BOUND = 0, 1, 2, 3, 4
_STATUS_OF = (TrialStatus.DISPATCHED, TrialStatus.SUCCEEDED, TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.SUCCEEDED)
_CONVERGED_OF = (None, True, False, None, False)


def _outcome(status: str, converged: bool | None) -> int:
    if status == TrialStatus.SUCCEEDED:
        return _CONVERGED if converged else _NOT_CONVERGED
    return _FAILED if status == TrialStatus.FAILED else _DISPATCHED


def outcome_array(items: Iterable[int] = ()) -> ChunkedArray:
    return ChunkedArray("b", items)


def _same(value: Any) -> Any:
    return value


def _list(value: list[Any]) -> list[Any]:
    return list(value)


def _dict_of_arrays(value: dict[str, ChunkedArray]) -> dict[str, ChunkedArray]:
    return {key: items.copy() for key, items in value.items()}


def _dict_of_dicts(value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: dict(item) for key, item in value.items()}


# How deep Job.__deepcopy__ copies each attribute: exactly as deep as the event
# mutators change it in place. Values only ever replaced whole (the spec, the
# generator state) are shared; the policy's state is copied by its policy; an
# attribute missing here is deep-copied.
_COPY_DEPTH = {
    "spec": _same,
    "generator_state": _same,
    "trial_batch_sizes": ChunkedArray.copy,
    "trial_outcomes": ChunkedArray.copy,
    "open_trials": _dict_of_dicts,
    "rewards": _dict_of_arrays,
    "reward_trials": _dict_of_arrays,
    "_pending_events": _list,
}
_IMMUTABLE = (str, int, float, bool, type(None), UUID, datetime)


class Job(Aggregate):
    """Version 5 keeps the policy's state in one attribute (``policy_state``), each open trial's
    bound and last cost with it (``open_trials``), and the stop rule's bookkeeping; version 4
    kept Zeus's and LSTS's state in attributes of their own, version 3 kept reward histories in
    plain arrays and trial sizes, statuses and convergence in lists, version 2 reward histories
    in lists too, and version 1 also held a dict spec and ran Zeus's policy."""

    TOPIC = "bso.Job"
    class_version = 5

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["spec"] = JobSpec.from_record(state["spec"])
        state.update(lsts=None, lsts_runs={})  # every version-1 job ran Zeus's policy

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["rewards"] = {key: array("d", items) for key, items in state["rewards"].items()}
        state["reward_trials"] = {key: array("q", items) for key, items in state["reward_trials"].items()}

    @staticmethod
    def upcast_v3_v4(state: dict[str, Any]) -> None:
        state["rewards"] = {key: reward_array(items) for key, items in state["rewards"].items()}
        state["reward_trials"] = {key: number_array(items) for key, items in state["reward_trials"].items()}
        state["trial_batch_sizes"] = number_array(state["trial_batch_sizes"])
        statuses, converged = state.pop("trial_statuses"), state.pop("trial_converged")
        state["trial_outcomes"] = outcome_array(map(_outcome, statuses, converged))

    @staticmethod
    def upcast_v4_v5(state: dict[str, Any]) -> None:
        """Version-4 snapshots did not tell trials stopped by the bound from other unconverged
        ones: the count in a row starts again from 0 (only views read it: those jobs ran
        without escalation), and the fewest epochs is unknown (they ran without prediction)."""
        stage, explorations, arms = state.pop("stage"), state.pop("explorations"), state.pop("arms")
        lsts_state, lsts_runs = state.pop("lsts"), state.pop("lsts_runs")
        if lsts_state is None:
            state["policy_state"] = {"stage": stage, "explorations": explorations, "arms": arms}
        else:
            state["policy_state"] = lsts_state
        explored = {record["trial"] for records in explorations.values() for record in records}
        open_trials = {}
        for number, heard in state["open_trials"].items():
            run = lsts_runs.get(number)
            if run is not None:
                kind = TRIAL_KINDS[run["kind"]]  # LSTS's names for its kinds of run
            elif int(number) in explored:
                kind = TrialKind.EXPLORATION
            else:
                kind = TrialKind.BANDIT if stage == Stage.BANDIT else TrialKind.CONCURRENT
            bound, cost = (None, None) if run is None else (run["bound"], run["cost"])
            open_trials[number] = {"heard": heard, "kind": kind, "bound": bound, "scale": 1.0, "cost": cost}
        state["open_trials"] = open_trials
        outcomes = state["trial_outcomes"]
        converged = [number for number in range(len(outcomes), 0, -1) if outcomes[number - 1] == _CONVERGED]
        state.update(stopped_in_a_row=0, last_converged_trial=converged[0] if converged else 0, fewest_epochs=None)

    class Registered(Aggregate.Created):
        """Version 2 added ``policy_version`` (version-1 registrations ran policy 1);
        version 3 stores the spec as a JobSpec (versions 1 and 2 stored a dict)."""

        TOPIC = "bso.Job.Registered"
        class_version = 3
        job_id: str
        spec: JobSpec
        seed: int
        generator_state: dict[str, Any]
        policy_version: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["policy_version"] = 1

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["spec"] = JobSpec.from_record(state["spec"])

    class Created(Aggregate.Created):
        """Unused: the library requires an explicit topic for this inherited name too."""

        TOPIC = "bso.Job.Created"

    class StageAdvancedToMAB(Aggregate.Event):
        """Version 2 records an infinite precision as null with a flag, not as "inf"."""

        TOPIC = "bso.Job.StageAdvancedToMAB"
        class_version = 2
        survivors: list[int]
        arms: list[dict[str, Any]]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["arms"] = [current_arm_record(arm) for arm in state["arms"]]

        def apply(self, job: "Job") -> None:
            job._tell(Advanced(StageAdvance(list(self.survivors), [dict(arm) for arm in self.arms])))

    class TrialDispatched(Aggregate.Event):
        """Version 2 added what an LSTS dispatch decides: the run's cost bound and the
        exploration step it starts (None for Zeus jobs, and in version-1 events); version 3
        the escalation of the trial's bound (1 in older events)."""

        TOPIC = "bso.Job.TrialDispatched"
        class_version = 3
        number: int
        batch_size: int
        kind: TrialKind
        reason: dict[str, Any]
        generator_state: dict[str, Any] | None
        cost_bound: float | None
        step: dict[str, Any] | None
        bound_scale: float

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["cost_bound"] = None
            state["step"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["bound_scale"] = 1.0

        def apply(self, job: "Job") -> None:
            job.trial_batch_sizes.append(self.batch_size)
            job.trial_outcomes.append(_DISPATCHED)
            job.open_trials[str(self.number)] = {
                "heard": self.timestamp.timestamp(),
                "kind": self.kind,
                "bound": self.cost_bound,
                "scale": self.bound_scale,
                "cost": None,
            }
            if self.generator_state is not None:
                job.generator_state = dict(self.generator_state)
            job._tell(Dispatched(self.number, self.batch_size, self.kind, self.step))

    class TrialProgressReported(Aggregate.Event):
        TOPIC = "bso.Job.TrialProgressReported"
        number: int
        epoch: int
        time: float
        energy: float
        metric: float
        cost: float

        def apply(self, job: "Job") -> None:
            job.open_trials[str(self.number)].update(heard=self.timestamp.timestamp(), cost=self.cost)

    class TrialReported(Aggregate.Event):
        """Version 2 records an infinite precision as null with a flag, not as "inf"; version 3
        the trials stopped by the bound in a row after this one (None in older events: the
        count is left as it was)."""

        TOPIC = "bso.Job.TrialReported"
        class_version = 3
        number: int
        batch_size: int
        epoch: int
        time: float
        energy: float
        metric: float
        cost: float
        converged: bool
        reason: StopReason
        message: str
        min_cost_lowered: bool
        arm: dict[str, Any] | None
        stopped_in_a_row: int | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            if state["arm"] is not None:
                state["arm"] = current_arm_record(state["arm"])

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["stopped_in_a_row"] = None

        def apply(self, job: "Job") -> None:
            stopped_by_bound = self.reason in BOUND_STOPS
            outcome = _CONVERGED if self.converged else _STOPPED_BY_BOUND if stopped_by_bound else _NOT_CONVERGED
            job.trial_outcomes[self.number - 1] = outcome
            if self.stopped_in_a_row is not None:
                job.stopped_in_a_row = self.stopped_in_a_row
            if self.converged:
                job.last_converged_trial = max(job.last_converged_trial, self.number)
            job.open_trials.pop(str(self.number), None)
            numbers = job.reward_trials.setdefault(str(self.batch_size), number_array())
            rewards = job.rewards.setdefault(str(self.batch_size), reward_array())
            position = bisect_right(numbers, self.number)  # reports may finish out of order
            numbers.insert(position, self.number)
            rewards.insert(position, -self.cost)
            if self.min_cost_lowered:
                job.min_cost = self.cost
                job.min_cost_batch_size = self.batch_size
            if self.converged and (job.fewest_epochs is None or self.epoch < job.fewest_epochs):
                job.fewest_epochs = self.epoch
            job._tell(Finished(self.number, self.batch_size, self.converged, self.cost, self.arm))

    class TrialEnded(Aggregate.Event):
        """The trainer gave the trial up (PATCH /trials) before its final report."""

        TOPIC = "bso.Job.TrialEnded"
        number: int

        def apply(self, job: "Job") -> None:
            job._abandon(self.number)

    class TrialExpired(Aggregate.Event):
        """Nothing was heard from the trial for longer than the lease."""

        TOPIC = "bso.Job.TrialExpired"
        number: int
        last_heard_at: float
        lease_seconds: float

        def apply(self, job: "Job") -> None:
            job._abandon(self.number)

    class PolicyObserved(Aggregate.Event):
        """What a finished run changed in the policy's state, as the policy recorded it (saved
        with the event that finished the run: TrialReported, TrialEnded or TrialExpired)."""

        TOPIC = "bso.Job.PolicyObserved"
        number: int
        observation: dict[str, Any]

        def apply(self, job: "Job") -> None:
            job._tell(Observed(self.number, self.observation))

    class Deleted(Aggregate.Event):
        TOPIC = "bso.Job.Deleted"

        def apply(self, job: "Job") -> None:
            job.deleted = True

    def __init__(
        self,
        job_id: str,
        spec: JobSpec,
        seed: int,
        generator_state: dict[str, Any],
        policy_version: int,
    ) -> None:
        self.job_id = job_id
        self.spec = spec
        self.seed = seed
        self.generator_state = dict(generator_state)
        self.policy_version = policy_version
        self.min_cost: float | None = None
        self.min_cost_batch_size: int = spec.default_batch_size
        self.deleted = False
        # Per trial, indexed by number - 1: its batch size and its outcome code. Chunked
        # arrays of machine numbers, so that copying them costs almost nothing however long
        # the history (domain/chunked_array.py).
        self.trial_batch_sizes = number_array()
        self.trial_outcomes = outcome_array()
        # Bounded by trials in flight: number -> when last heard from (epoch seconds), kind,
        # bound set at dispatch (None: none, or judged at each report), escalation, last cost.
        self.open_trials: dict[str, dict[str, Any]] = {}
        # batch size -> rewards (-cost) of its Succeeded trials and their numbers, by number.
        self.rewards: dict[str, ChunkedArray] = {}
        self.reward_trials: dict[str, ChunkedArray] = {}
        self.policy_state: Any = self.policy.initial_state(spec)
        # The stop rule's bookkeeping: trials stopped by the bound since the latest converged
        # trial, in dispatch order (docs/policies.md, "Costs that grow"), and the fewest epochs any run converged in.
        self.stopped_in_a_row = 0
        self.last_converged_trial = 0
        self.fewest_epochs: int | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> "Job":
        # The repository copies the cached aggregate for every command, so that a
        # command that fails leaves the cache untouched. A generic deep copy costs
        # more than the command itself; copying each attribute only as deep as the
        # mutators change it keeps the copy cheap, however long the history.
        clone = object.__new__(type(self))
        for name, value in self.__dict__.items():
            if isinstance(value, _IMMUTABLE):
                clone.__dict__[name] = value
            elif name == "policy_state":
                clone.__dict__[name] = self.policy.copy_state(value)
            elif name in _COPY_DEPTH:
                clone.__dict__[name] = _COPY_DEPTH[name](value)
            else:
                clone.__dict__[name] = deepcopy(value, memo)
        return clone

    @classmethod
    def register(cls, job_uuid: UUID, spec: JobSpec, seed: int, now: datetime) -> "Job":
        """A new job whose generator starts as ``numpy.random.default_rng(seed)``."""
        if spec.job_id is None:
            raise BadOperationError("A job is registered under a job_id; the spec has none")
        return cls._create(
            cls.Registered,
            id=job_uuid,
            job_id=spec.job_id,
            spec=spec,
            seed=seed,
            generator_state=seeded_generator_state(seed),
            policy_version=policy_named(spec.policy).version,
            timestamp=now,
        )

    # -- queries ---------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return policy_named(self.spec.policy)

    @property
    def stage(self) -> Stage:
        return self.policy.stage(self.policy_state)

    @property
    def trial_count(self) -> int:
        return len(self.trial_outcomes)

    @property
    def batch_sizes(self) -> list[int]:
        return list(self.spec.batch_sizes)

    def trial_batch_size(self, number: int) -> int:
        return int(self.trial_batch_sizes[number - 1])

    def rewards_of(self, batch_size: int) -> array:
        return self.rewards.get(str(batch_size), reward_array()).to_array()

    def recent_converged_costs(self, batch_size: int | None, count: int) -> list[float]:
        """Costs of the last ``count`` converged trials (of one size, or of any), in trial order."""
        costs: list[float] = []
        if batch_size is None:
            numbers = (number for number in range(self.trial_count, 0, -1) if self.trial_outcomes[number - 1] == _CONVERGED)
            for number in numbers:
                costs.append(self._reported_cost(number))
                if len(costs) == count:
                    break
            return costs[::-1]
        numbers_of_size = self.reward_trials.get(str(batch_size), number_array())
        rewards = self.rewards.get(str(batch_size), reward_array())
        for position in range(len(numbers_of_size) - 1, -1, -1):
            if self.trial_outcomes[numbers_of_size[position] - 1] == _CONVERGED:
                costs.append(-rewards[position])
                if len(costs) == count:
                    break
        return costs[::-1]

    def _reported_cost(self, number: int) -> float:
        size = str(self.trial_batch_sizes[number - 1])
        return -self.rewards[size][bisect_left(self.reward_trials[size], number)]

    def stop_rule(self) -> StopRule:
        spec = self.spec
        return StopRule(
            eta_knob=spec.eta_knob,
            beta_knob=spec.beta_knob,
            max_power=spec.max_power,
            target_metric=spec.target_metric,
            higher_is_better_metric=spec.higher_is_better_metric,
            max_epochs=spec.max_epochs,
        )

    def trial_status(self, number: int) -> TrialStatus:
        return _STATUS_OF[self.trial_outcomes[number - 1]]

    def trial_converged(self, number: int) -> bool | None:
        """None until the trial's final report is in."""
        return _CONVERGED_OF[self.trial_outcomes[number - 1]]

    def trial_statuses(self) -> list[TrialStatus]:
        return [_STATUS_OF[code] for code in self.trial_outcomes]

    def trial_tally(self) -> dict[str, int]:
        """How many trials are in each status, and how many of the succeeded converged."""
        count = self.trial_outcomes.count
        converged, stopped = count(_CONVERGED), count(_STOPPED_BY_BOUND)
        not_converged = count(_NOT_CONVERGED) + stopped
        return {
            "total": self.trial_count,
            "dispatched": count(_DISPATCHED),
            "succeeded": converged + not_converged,
            "failed": count(_FAILED),
            "converged": converged,
            "not_converged": not_converged,
        }

    def next_bound(self) -> tuple[BoundBasis, float]:
        """The basis of the bound a trial dispatched now would get, and its escalation."""
        return self.policy.bound_basis(self.policy_state, self), self._escalation()

    def run_bound(self, number: int) -> float | None:
        """The cost bound an open trial is judged against now; None: no bound."""
        if not 1 <= number <= self.trial_count or self.trial_status(number) != TrialStatus.DISPATCHED:
            raise UnknownTrialError(f"Job {self.job_id} has no open trial number {number}")
        bound = self._bound_for(self.open_trials[str(number)])
        return None if bound is NO_BOUND else bound.value

    # -- commands ----------------------------------------------------------------------

    def dispatch_trial(self, now: datetime) -> DispatchedTrial:
        """Hand out the next trial, as the job's policy decides, with its bound's escalation."""
        decision = self.policy.decide(self.policy_state, self)
        if decision.advance is not None:
            advance = decision.advance
            self.trigger_event(self.StageAdvancedToMAB, survivors=advance.survivors, arms=advance.arms, timestamp=now)
        scale = self._escalation()
        number = self.trial_count + 1
        self.trigger_event(
            self.TrialDispatched,
            number=number,
            batch_size=decision.batch_size,
            kind=decision.kind,
            reason=decision.reason,
            generator_state=decision.generator_state,
            cost_bound=None if decision.cost_bound is None else decision.cost_bound * scale,
            step=decision.step,
            bound_scale=scale,
            timestamp=now,
        )
        return DispatchedTrial(number, decision.batch_size, decision.kind)

    def report(self, report: EpochReport, now: datetime) -> ReportAnswer:
        """Record one epoch's cumulative measurements and say whether to stop."""
        number, batch_size = report.trial_number, report.batch_size
        self._check_trial(number, batch_size, BadOperationError)
        status = self.trial_status(number)
        if status == TrialStatus.SUCCEEDED:
            converged = bool(self.trial_converged(number))
            return ReportAnswer(True, converged, already_reported_message(number))
        if status == TrialStatus.FAILED:
            raise TrialAbandonedError(
                f"Trial({number}) was ended or expired before this report; its result is not "
                "used. Ask for a new batch size to train again."
            )
        trial = self.open_trials[str(number)]
        verdict = judge_epoch(self.stop_rule(), self._bound_for(trial), report, self.spec.predictive_stop, self.fewest_epochs)
        measured = {"epoch": report.epoch, "time": report.time, "energy": report.energy, "metric": report.metric}
        if not verdict.stop_train:
            self.trigger_event(self.TrialProgressReported, number=number, **measured, cost=verdict.cost, timestamp=now)
            return ReportAnswer(False, False, verdict.message)
        observation = self.policy.observe(
            self.policy_state, self, number, trial["kind"], verdict.converged, verdict.cost, reported=True
        )
        self.trigger_event(
            self.TrialReported,
            number=number,
            batch_size=batch_size,
            **measured,
            cost=verdict.cost,
            converged=verdict.converged,
            reason=verdict.reason,
            message=verdict.message,
            min_cost_lowered=self.min_cost is None or verdict.cost < self.min_cost,
            arm=observation.arm,
            stopped_in_a_row=self._stopped_in_a_row_after(number, verdict.converged, verdict.reason in BOUND_STOPS),
            timestamp=now,
        )
        self._record_observation(number, observation.record, now)
        return ReportAnswer(True, verdict.converged, verdict.message)

    def end_trial(self, number: int, batch_size: int, now: datetime) -> None:
        """Give a trial up; a no-op once it has finished."""
        self._check_trial(number, batch_size, UnknownTrialError)
        if self.trial_status(number) == TrialStatus.DISPATCHED:
            record = self._observe_failure(number)
            self.trigger_event(self.TrialEnded, number=number, timestamp=now)
            self._record_observation(number, record, now)

    def expire_stale_trials(self, now: datetime, lease_seconds: float) -> list[int]:
        """Expire every trial not heard from within the lease; returns their numbers."""
        cutoff = now.timestamp() - lease_seconds
        stale = sorted(
            (int(number), trial["heard"]) for number, trial in self.open_trials.items() if trial["heard"] < cutoff
        )
        for number, heard in stale:
            record = self._observe_failure(number)
            self.trigger_event(
                self.TrialExpired,
                number=number,
                last_heard_at=heard,
                lease_seconds=lease_seconds,
                timestamp=now,
            )
            self._record_observation(number, record, now)
        return [number for number, _ in stale]

    def delete(self, now: datetime) -> None:
        self.trigger_event(self.Deleted, timestamp=now)

    # -- helpers -----------------------------------------------------------------------

    def _escalation(self) -> float:
        return escalation_scale(self.stopped_in_a_row, bool(self.spec.bound_escalation))

    def _bound_for(self, trial: dict[str, Any]) -> CostBound:
        """The bound an open trial is judged against now: set at its dispatch, or its policy's
        reference as of now times the escalation it was dispatched with."""
        if self.policy.bounds_fixed_at_dispatch:
            bound = trial["bound"]
            return NO_BOUND if bound is None else CostBound(bound, f"the run's cost bound({bound})")
        return cost_bound(self.policy.bound_basis(self.policy_state, self), trial["scale"])

    def _observe_failure(self, number: int) -> dict[str, Any] | None:
        """What an ended or expired trial changes in the policy: it failed, at the cost it last
        reported (None: no report)."""
        trial = self.open_trials[str(number)]
        observation = self.policy.observe(
            self.policy_state, self, number, trial["kind"], False, trial["cost"], reported=False
        )
        return observation.record

    def _record_observation(self, number: int, record: dict[str, Any] | None, now: datetime) -> None:
        if record is not None:
            self.trigger_event(self.PolicyObserved, number=number, observation=record, timestamp=now)

    def _tell(self, fact: Any) -> None:
        """Pass a fact of an event being applied on to the policy's state."""
        self.policy.apply(self.policy_state, fact)

    def _stopped_in_a_row_after(self, number: int, converged: bool, stopped_by_bound: bool) -> int:
        """Trials stopped by the bound in a row once this trial has finished, in dispatch order: a
        converged trial dispatched after the latest converged one restarts the count from the
        trials stopped by the bound that were dispatched after it and have already finished; a
        trial stopped by the bound adds one if it was dispatched after the latest converged trial."""
        if number < self.last_converged_trial:
            return self.stopped_in_a_row
        if converged:
            later = range(number, self.trial_count)  # indexes of the trials dispatched after it
            return sum(1 for index in later if self.trial_outcomes[index] == _STOPPED_BY_BOUND)
        return self.stopped_in_a_row + 1 if stopped_by_bound else self.stopped_in_a_row

    def _check_trial(self, number: int, batch_size: int, error: type[Exception]) -> None:
        if not 1 <= number <= self.trial_count or self.trial_batch_sizes[number - 1] != batch_size:
            raise error(
                f"Unknown trial: job {self.job_id} has no trial number {number} "
                f"with batch size {batch_size}"
            )

    def _abandon(self, number: int) -> None:
        """Assignment shared by TrialEnded and TrialExpired: the trial becomes Failed."""
        self.trial_outcomes[number - 1] = _FAILED
        self.open_trials.pop(str(number), None)
        self._tell(Abandoned(number, self.trial_batch_size(number)))
