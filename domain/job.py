"""The Job aggregate: one recurring training job and every trial it handed out.

Event ``apply`` methods only assign what the event says; every decision (which
batch size, the random draws, the cost bound, the new minimum cost, an arm's
refit) is made by a command method and carried in the event.

State is kept small and flat so that a job with 10,000 trials is as cheap to
copy out of the cache as a new one: per-trial facts live in chunked arrays of numbers,
and the rest is bounded by the number of batch sizes and of trials in flight.
"""

from array import array
from bisect import bisect_right
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable
from uuid import UUID

import numpy as np
from eventsourcing.domain import Aggregate

from domain.bandit import Arm, choose_arm, current_arm_record, fit_arm
from domain.chunked_array import ChunkedArray
from domain.enums import Stage, StopReason, TrialKind, TrialStatus
from domain.errors import BadOperationError, TrialAbandonedError, UnknownTrialError
from domain.pruning import (
    AwaitExploration,
    Exploration,
    ExploreBatchSize,
    PruningComplete,
    next_pruning_step,
)
from domain.randomness import generator_state, restore_generator, seeded_generator_state
from domain.reporting import (
    CostBound,
    EpochReport,
    StopRule,
    already_reported_message,
    judge_epoch,
    run_cost_bound,
    zeus_cost_bound,
)
from domain import lsts
from domain.spec import LSTS, POLICY_VERSIONS, JobSpec



# LSTS's names for the kinds of run, and the trial kinds the job records for them.
_LSTS_KINDS = {lsts.EXPLORATION: TrialKind.EXPLORATION, lsts.CONCURRENT: TrialKind.CONCURRENT, lsts.BANDIT_RUN: TrialKind.BANDIT}
_LSTS_KIND_OF = {kind: name for name, kind in _LSTS_KINDS.items()}


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


# Attributes holding only immutable items, copied shallowly (see Job.__deepcopy__).
def _same(value: Any) -> Any:
    return value


def _list(value: list[Any]) -> list[Any]:
    return list(value)


def _dict(value: dict[str, Any]) -> dict[str, Any]:
    return dict(value)


def _dict_of_lists(value: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {key: list(items) for key, items in value.items()}


def reward_array(items: Iterable[float] = ()) -> ChunkedArray:
    return ChunkedArray("d", items)


def number_array(items: Iterable[int] = ()) -> ChunkedArray:
    return ChunkedArray("q", items)


# A trial's status and, once its final report is in, whether it converged: one byte per
# trial in Job.trial_outcomes.
_DISPATCHED, _CONVERGED, _NOT_CONVERGED, _FAILED = 0, 1, 2, 3
_STATUS_OF = (TrialStatus.DISPATCHED, TrialStatus.SUCCEEDED, TrialStatus.SUCCEEDED, TrialStatus.FAILED)
_CONVERGED_OF = (None, True, False, None)


def _outcome(status: str, converged: bool | None) -> int:
    if status == TrialStatus.SUCCEEDED:
        return _CONVERGED if converged else _NOT_CONVERGED
    return _FAILED if status == TrialStatus.FAILED else _DISPATCHED


def outcome_array(items: Iterable[int] = ()) -> ChunkedArray:
    return ChunkedArray("b", items)


def _dict_of_arrays(value: dict[str, ChunkedArray]) -> dict[str, ChunkedArray]:
    return {key: items.copy() for key, items in value.items()}


def _dict_of_dicts(value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: dict(item) for key, item in value.items()}


def _dict_of_lists_of_dicts(value: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {key: [dict(item) for item in items] for key, items in value.items()}


def _lsts_state(value: "lsts.LstsState | None") -> "lsts.LstsState | None":
    """Its steps are replaced whole, its lists and dicts changed in place."""
    if value is None:
        return None
    copy = dict(value)
    copy["log_costs"] = _dict_of_lists(value["log_costs"])
    copy["cheapest"] = dict(value["cheapest"])
    copy["failures"] = dict(value["failures"])
    copy["explored"] = list(value["explored"])
    copy["arms"] = list(value["arms"])
    return copy  # type: ignore[return-value]


# How deep Job.__deepcopy__ copies each attribute: exactly as deep as the event
# mutators change it in place. Values only ever replaced whole (the spec, the
# generator state, each arm) are shared; an attribute missing here is deep-copied.
_COPY_DEPTH = {
    "spec": _same,
    "generator_state": _same,
    "trial_batch_sizes": ChunkedArray.copy,
    "trial_outcomes": ChunkedArray.copy,
    "open_trials": _dict,
    "arms": _dict,
    "explorations": _dict_of_lists_of_dicts,
    "rewards": _dict_of_arrays,
    "reward_trials": _dict_of_arrays,
    "lsts": _lsts_state,
    "lsts_runs": _dict_of_dicts,
    "_pending_events": _list,
}
_IMMUTABLE = (str, int, float, bool, type(None), UUID, datetime)


class Job(Aggregate):
    """Version 4 keeps every per-trial fact in chunked arrays of machine numbers; snapshots
    of version 3 kept reward histories in plain arrays and trial sizes, statuses and
    convergence in lists, those of version 2 reward histories in lists too, and those of
    version 1 also held a dict spec and ran Zeus's policy."""

    TOPIC = "bso.Job"
    class_version = 4

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
            job.stage = Stage.BANDIT
            job.arms = {str(arm["batch_size"]): dict(arm) for arm in self.arms}

    class TrialDispatched(Aggregate.Event):
        """Version 2 added what an LSTS dispatch decides: the run's cost bound and the
        exploration step it starts (None for Zeus jobs, and in version-1 events)."""

        TOPIC = "bso.Job.TrialDispatched"
        class_version = 2
        number: int
        batch_size: int
        kind: TrialKind
        reason: dict[str, Any]
        generator_state: dict[str, Any] | None
        cost_bound: float | None
        step: dict[str, Any] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["cost_bound"] = None
            state["step"] = None

        def apply(self, job: "Job") -> None:
            job.trial_batch_sizes.append(self.batch_size)
            job.trial_outcomes.append(_DISPATCHED)
            job.open_trials[str(self.number)] = self.timestamp.timestamp()
            if job.lsts is not None:
                kind = _LSTS_KIND_OF[self.kind]
                job.lsts_runs[str(self.number)] = {"kind": kind, "bound": self.cost_bound, "cost": None}
                lsts.start_step(job.lsts, self.step)
            elif self.kind == TrialKind.EXPLORATION:
                job.explorations.setdefault(str(self.batch_size), []).append(
                    {"trial": self.number, "converged": None, "cost": None}
                )
            if self.generator_state is not None:
                job.generator_state = dict(self.generator_state)

    class TrialProgressReported(Aggregate.Event):
        TOPIC = "bso.Job.TrialProgressReported"
        number: int
        epoch: int
        time: float
        energy: float
        metric: float
        cost: float

        def apply(self, job: "Job") -> None:
            job.open_trials[str(self.number)] = self.timestamp.timestamp()
            if job.lsts is not None:
                job.lsts_runs[str(self.number)]["cost"] = self.cost

    class TrialReported(Aggregate.Event):
        """Version 2 records an infinite precision as null with a flag, not as "inf"."""

        TOPIC = "bso.Job.TrialReported"
        class_version = 2
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

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            if state["arm"] is not None:
                state["arm"] = current_arm_record(state["arm"])

        def apply(self, job: "Job") -> None:
            job.trial_outcomes[self.number - 1] = _CONVERGED if self.converged else _NOT_CONVERGED
            job.open_trials.pop(str(self.number), None)
            for exploration in job.explorations.get(str(self.batch_size), []):
                if exploration["trial"] == self.number:
                    exploration.update(converged=self.converged, cost=self.cost)
            numbers = job.reward_trials.setdefault(str(self.batch_size), number_array())
            rewards = job.rewards.setdefault(str(self.batch_size), reward_array())
            position = bisect_right(numbers, self.number)  # reports may finish out of order
            numbers.insert(position, self.number)
            rewards.insert(position, -self.cost)
            if self.min_cost_lowered:
                job.min_cost = self.cost
                job.min_cost_batch_size = self.batch_size
            if self.arm is not None:
                job.arms[str(self.batch_size)] = dict(self.arm)

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
        """What a finished LSTS run changed in the policy's state (saved with the event that
        finished the run: TrialReported, TrialEnded or TrialExpired)."""

        TOPIC = "bso.Job.PolicyObserved"
        number: int
        observation: dict[str, Any]

        def apply(self, job: "Job") -> None:
            assert job.lsts is not None
            observation = lsts.Observation.from_record(self.observation)
            lsts.apply_observation(job.lsts, observation)
            if observation.enter_bandit:
                job.stage = Stage.BANDIT
            job.lsts_runs.pop(str(self.number), None)

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
        self.stage = Stage.PRUNING
        self.min_cost: float | None = None
        self.min_cost_batch_size: int = spec.default_batch_size
        self.deleted = False
        # Per trial, indexed by number - 1: its batch size and its outcome code. Chunked
        # arrays of machine numbers, so that copying them costs almost nothing however long
        # the history (domain/chunked_array.py).
        self.trial_batch_sizes = number_array()
        self.trial_outcomes = outcome_array()
        # Bounded by trials in flight: number -> when last heard from (epoch seconds).
        self.open_trials: dict[str, float] = {}
        # batch size -> its non-abandoned Exploration trials, in trial order.
        self.explorations: dict[str, list[dict[str, Any]]] = {}
        # batch size -> rewards (-cost) of its Succeeded trials and their numbers, by number.
        self.rewards: dict[str, ChunkedArray] = {}
        self.reward_trials: dict[str, ChunkedArray] = {}
        self.arms: dict[str, dict[str, Any]] = {}
        # LSTS jobs only: the policy's state, and each open run's kind, bound and last cost.
        self.lsts: lsts.LstsState | None = None
        self.lsts_runs: dict[str, dict[str, Any]] = {}
        if spec.policy == LSTS:
            self.stage = Stage.LOCAL_SEARCH
            self.lsts = lsts.initial_state(spec.default_batch_size)

    def __deepcopy__(self, memo: dict[int, Any]) -> "Job":
        # The repository copies the cached aggregate for every command, so that a
        # command that fails leaves the cache untouched. A generic deep copy costs
        # more than the command itself; copying each attribute only as deep as the
        # mutators change it keeps the copy cheap, however long the history.
        clone = object.__new__(type(self))
        for name, value in self.__dict__.items():
            if isinstance(value, _IMMUTABLE):
                clone.__dict__[name] = value
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
            policy_version=POLICY_VERSIONS[spec.policy],
            timestamp=now,
        )

    # -- queries ---------------------------------------------------------------

    @property
    def trial_count(self) -> int:
        return len(self.trial_outcomes)

    @property
    def batch_sizes(self) -> list[int]:
        return list(self.spec.batch_sizes)

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

    def exploration_history(self) -> dict[int, list[Exploration]]:
        return {
            int(size): [
                Exploration(
                    trial_number=record["trial"],
                    finished=self.trial_status(record["trial"]) == TrialStatus.SUCCEEDED,
                    converged=bool(record["converged"]),
                    cost=record["cost"],
                )
                for record in records
            ]
            for size, records in self.explorations.items()
        }

    def arm_list(self) -> list[Arm]:
        return sorted((Arm.from_record(arm) for arm in self.arms.values()), key=lambda a: a.batch_size)

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
        converged, not_converged = count(_CONVERGED), count(_NOT_CONVERGED)
        return {
            "total": self.trial_count,
            "dispatched": count(_DISPATCHED),
            "succeeded": converged + not_converged,
            "failed": count(_FAILED),
            "converged": converged,
            "not_converged": not_converged,
        }

    # -- commands ----------------------------------------------------------------

    def dispatch_trial(self, now: datetime) -> DispatchedTrial:
        """Hand out the next trial, as the job's policy decides."""
        if self.lsts is not None:
            return self._dispatch_by_lsts(now)
        return self._dispatch_by_zeus(now)

    # Zeus's policy: a pruning exploration, a concurrent stand-in, or a bandit pick.

    def _dispatch_by_zeus(self, now: datetime) -> DispatchedTrial:
        if self.stage == Stage.PRUNING:
            step = next_pruning_step(
                self.batch_sizes,
                self.spec.default_batch_size,
                self.spec.num_pruning_rounds,
                self.exploration_history(),
            )
            if isinstance(step, ExploreBatchSize):
                reason = {
                    "stage": Stage.PRUNING,
                    "round": step.round_number,
                    "direction": step.direction,
                }
                return self._dispatch(step.batch_size, TrialKind.EXPLORATION, reason, None, now)
            if isinstance(step, AwaitExploration):
                reason = {
                    "stage": Stage.PRUNING,
                    "round": step.round_number,
                    "waiting_for_batch_size": step.pending_batch_size,
                    "waiting_for_trial": step.pending_trial_number,
                    "min_cost_batch_size": self.min_cost_batch_size,
                }
                return self._dispatch(self.min_cost_batch_size, TrialKind.CONCURRENT, reason, None, now)
            assert isinstance(step, PruningComplete)
            self._advance_to_mab(step.survivors, now)
        return self._dispatch_from_bandit(now)

    def _advance_to_mab(self, survivors: list[int], now: datetime) -> None:
        history = self.exploration_history()
        arms = [
            fit_arm(
                size,
                [-exploration.cost for exploration in history.get(size, []) if exploration.cost is not None],
                self.spec.mab_prior_mean,
                self.spec.mab_prior_precision,
            ).to_record()
            for size in sorted(survivors)
        ]
        self.trigger_event(self.StageAdvancedToMAB, survivors=sorted(survivors), arms=arms, timestamp=now)

    def _dispatch_from_bandit(self, now: datetime) -> DispatchedTrial:
        arms = self.arm_list()
        generator = restore_generator(self.generator_state)
        choice = choose_arm(arms, self.spec.mab_num_explorations, generator)
        # The arms and the generator state it drew from are known from earlier events;
        # the read model restores them into the trial's "why", so they are not repeated here.
        reason = {
            "stage": Stage.BANDIT,
            "phase": choice.phase,
            "permutation": choice.permutation,
            "samples": choice.samples,
        }
        return self._dispatch(choice.batch_size, TrialKind.BANDIT, reason, generator_state(generator), now)

    # LSTS (domain/lsts.py): the walk over sorted sizes, concurrent stand-ins, then its bandit.

    def _dispatch_by_lsts(self, now: datetime) -> DispatchedTrial:
        assert self.lsts is not None
        knobs = self.spec.lsts_knobs()
        decision = lsts.decide_dispatch(self.lsts, knobs, self.spec.default_batch_size, self.generator_state)
        kind = _LSTS_KINDS[decision.kind]
        reason = {"policy": LSTS, **decision.why}
        return self._dispatch(
            decision.batch_size, kind, reason, decision.generator_state, now, decision.cost_bound, decision.in_flight
        )

    def _observe_by_lsts(self, number: int, converged: bool, cost: float | None, now: datetime) -> None:
        """Record what a finished run (reported, ended or expired) changes in LSTS's state."""
        assert self.lsts is not None
        observation = lsts.judge_result(
            self.lsts,
            self.spec.lsts_knobs(),
            self.batch_sizes,
            self.spec.default_batch_size,
            self.trial_batch_sizes[number - 1],
            self.lsts_runs[str(number)]["kind"],
            converged,
            cost,
        )
        self.trigger_event(self.PolicyObserved, number=number, observation=observation.to_record(), timestamp=now)

    def _dispatch(
        self,
        batch_size: int,
        kind: TrialKind,
        reason: dict[str, Any],
        new_generator_state: dict[str, Any] | None,
        now: datetime,
        cost_bound: float | None = None,
        step: dict[str, Any] | None = None,
    ) -> DispatchedTrial:
        number = self.trial_count + 1
        self.trigger_event(
            self.TrialDispatched,
            number=number,
            batch_size=batch_size,
            kind=kind,
            reason=reason,
            generator_state=new_generator_state,
            cost_bound=cost_bound,
            step=step,
            timestamp=now,
        )
        return DispatchedTrial(number, batch_size, kind)

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
        verdict = judge_epoch(self.stop_rule(), self._bound_for(number), report)
        measured = {"epoch": report.epoch, "time": report.time, "energy": report.energy, "metric": report.metric}
        if not verdict.stop_train:
            self.trigger_event(
                self.TrialProgressReported,
                number=number,
                **measured,
                cost=verdict.cost,
                timestamp=now,
            )
            return ReportAnswer(False, False, verdict.message)
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
            arm=self._refit_arm(batch_size, -verdict.cost),
            timestamp=now,
        )
        if self.lsts is not None:
            self._observe_by_lsts(number, verdict.converged, verdict.cost, now)
        return ReportAnswer(True, verdict.converged, verdict.message)

    def run_bound(self, number: int) -> float | None:
        """The cost bound decided for an open trial when it was dispatched (LSTS); None when
        there is none, or when the policy judges each report afresh (Zeus: beta x min cost)."""
        if not 1 <= number <= self.trial_count or self.trial_status(number) != TrialStatus.DISPATCHED:
            raise UnknownTrialError(f"Job {self.job_id} has no open trial number {number}")
        return self.lsts_runs[str(number)]["bound"] if self.lsts is not None else None

    def _bound_for(self, number: int) -> CostBound:
        """The cost bound an open trial is judged against now, as the job's policy says."""
        if self.lsts is not None:
            return run_cost_bound(self.lsts_runs[str(number)]["bound"])
        return zeus_cost_bound(self.stop_rule(), self.min_cost)

    def _refit_arm(self, batch_size: int, reward: float) -> dict[str, Any] | None:
        """The arm of this size refitted with this reward, in the bandit stage only."""
        if self.stage != Stage.BANDIT or str(batch_size) not in self.arms:
            return None
        rewards = self.rewards.get(str(batch_size), reward_array()).to_array()
        window = self.spec.window_size
        if window > 0:
            rewards = rewards[max(0, len(rewards) - (window - 1)) :]
        rewards.append(reward)
        arm = fit_arm(batch_size, np.frombuffer(rewards), self.spec.mab_prior_mean, self.spec.mab_prior_precision)
        return arm.to_record()

    def end_trial(self, number: int, batch_size: int, now: datetime) -> None:
        """Give a trial up; a no-op once it has finished."""
        self._check_trial(number, batch_size, UnknownTrialError)
        if self.trial_status(number) == TrialStatus.DISPATCHED:
            self.trigger_event(self.TrialEnded, number=number, timestamp=now)
            self._observe_failure(number, now)

    def expire_stale_trials(self, now: datetime, lease_seconds: float) -> list[int]:
        """Expire every trial not heard from within the lease; returns their numbers."""
        cutoff = now.timestamp() - lease_seconds
        stale = sorted(
            (int(number), heard) for number, heard in self.open_trials.items() if heard < cutoff
        )
        for number, heard in stale:
            self.trigger_event(
                self.TrialExpired,
                number=number,
                last_heard_at=heard,
                lease_seconds=lease_seconds,
                timestamp=now,
            )
            self._observe_failure(number, now)
        return [number for number, _ in stale]

    def _observe_failure(self, number: int, now: datetime) -> None:
        """An ended or expired LSTS run failed, at the cost it last reported (None: no report)."""
        if self.lsts is not None:
            self._observe_by_lsts(number, False, self.lsts_runs[str(number)]["cost"], now)

    def delete(self, now: datetime) -> None:
        self.trigger_event(self.Deleted, timestamp=now)

    # -- helpers -----------------------------------------------------------------

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
        batch_size = str(self.trial_batch_sizes[number - 1])
        if batch_size in self.explorations:
            self.explorations[batch_size] = [
                record for record in self.explorations[batch_size] if record["trial"] != number
            ]
