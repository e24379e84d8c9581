"""Zeus's policy, decision for decision: pruning rounds (domain/pruning.py), then Gaussian
Thompson sampling (domain/bandit.py).

Its state: the stage, each batch size's Exploration trials that were not abandoned (trial
order) and the bandit's arms. Its bound is ``beta_knob x min_cost``, judged against the
reference as of each report, as Zeus judges it.
"""

from typing import Any

import numpy as np

from domain.bandit import Arm, choose_arm, fit_arm
from domain.bounds import BoundBasis
from domain.enums import Stage, TrialKind
from domain.policy import (
    Abandoned,
    Advanced,
    Decision,
    Dispatched,
    Finished,
    JobFacts,
    Observation,
    PolicyFact,
    StageAdvance,
)
from domain.pruning import (
    AwaitExploration,
    Exploration,
    ExploreBatchSize,
    PruningComplete,
    next_pruning_step,
    pruning_progress,
)
from domain.randomness import generator_state, restore_generator
from domain.spec import ZEUS, JobSpec

ZeusState = dict[str, Any]  # {"stage", "explorations": {size: [record]}, "arms": {size: arm record}}


class ZeusPolicy:
    name = ZEUS
    version = 1
    bounds_fixed_at_dispatch = False

    def initial_state(self, spec: JobSpec) -> ZeusState:
        return {"stage": Stage.PRUNING, "explorations": {}, "arms": {}}

    def copy_state(self, state: ZeusState) -> ZeusState:
        # Exploration records are updated in place; arms are replaced whole.
        explorations = {size: [dict(record) for record in records] for size, records in state["explorations"].items()}
        return {"stage": state["stage"], "explorations": explorations, "arms": dict(state["arms"])}

    def stage(self, state: ZeusState) -> Stage:
        return Stage(state["stage"])

    # -- decide ------------------------------------------------------------------------

    def decide(self, state: ZeusState, job: JobFacts) -> Decision:
        """A pruning exploration, a concurrent stand-in, or a bandit pick (each judged against
        the bound at its reports: none fixed at dispatch)."""
        if state["stage"] != Stage.PRUNING:
            return _bandit_pick(arm_list(state), job)
        spec = job.spec
        step = next_pruning_step(
            spec.batch_sizes, spec.default_batch_size, spec.num_pruning_rounds, exploration_history(state)
        )
        if isinstance(step, ExploreBatchSize):
            reason = {"stage": Stage.PRUNING, "round": step.round_number, "direction": step.direction}
            return Decision(step.batch_size, TrialKind.EXPLORATION, reason, None)
        if isinstance(step, AwaitExploration):
            reason = {
                "stage": Stage.PRUNING,
                "round": step.round_number,
                "waiting_for_batch_size": step.pending_batch_size,
                "waiting_for_trial": step.pending_trial_number,
                "min_cost_batch_size": job.min_cost_batch_size,
            }
            return Decision(job.min_cost_batch_size, TrialKind.CONCURRENT, reason, None)
        assert isinstance(step, PruningComplete)
        advance = _advance_to_bandit(state, job, step.survivors)
        pick = _bandit_pick([Arm.from_record(arm) for arm in advance.arms], job)
        return Decision(pick.batch_size, pick.kind, pick.reason, None, pick.generator_state, advance=advance)

    def bound_basis(self, state: ZeusState, job: JobFacts) -> BoundBasis:
        window = job.spec.stop_window or 0
        if window == 0:
            return BoundBasis(job.spec.beta_knob, "beta_knob", job.min_cost, "min_cost")
        recent = min(job.recent_converged_costs(None, window), default=None)
        return BoundBasis(job.spec.beta_knob, "beta_knob", recent, f"min_cost_of_last_converged({window})")

    # -- observe -------------------------------------------------------------------------

    def observe(
        self,
        state: ZeusState,
        job: JobFacts,
        number: int,
        kind: TrialKind,
        converged: bool,
        cost: float | None,
        reported: bool,
    ) -> Observation:
        """In the bandit stage, a reported trial of a size with an arm refits that arm on the
        size's latest rewards (``window_size``) and this one; nothing else changes by observing."""
        batch_size = job.trial_batch_size(number)
        if not reported or state["stage"] != Stage.BANDIT or str(batch_size) not in state["arms"]:
            return Observation()
        assert cost is not None
        rewards = job.rewards_of(batch_size)
        window = job.spec.window_size
        if window > 0:
            rewards = rewards[max(0, len(rewards) - (window - 1)) :]
        rewards.append(-cost)
        arm = fit_arm(batch_size, np.frombuffer(rewards), job.spec.mab_prior_mean, job.spec.mab_prior_precision)
        return Observation(arm=arm.to_record())

    def apply(self, state: ZeusState, fact: PolicyFact) -> None:
        explorations = state["explorations"]
        if isinstance(fact, Dispatched):
            if fact.kind == TrialKind.EXPLORATION:
                record = {"trial": fact.number, "converged": None, "cost": None}
                explorations.setdefault(str(fact.batch_size), []).append(record)
        elif isinstance(fact, Finished):
            for record in explorations.get(str(fact.batch_size), []):
                if record["trial"] == fact.number:
                    record.update(converged=fact.converged, cost=fact.cost)
            if fact.arm is not None:
                state["arms"][str(fact.batch_size)] = dict(fact.arm)
        elif isinstance(fact, Abandoned):
            size = str(fact.batch_size)
            if size in explorations:
                explorations[size] = [record for record in explorations[size] if record["trial"] != fact.number]
        elif isinstance(fact, Advanced):
            state["stage"] = Stage.BANDIT
            state["arms"] = {str(arm["batch_size"]): dict(arm) for arm in fact.advance.arms}

    # -- describe ------------------------------------------------------------------------

    def describe(self, state: ZeusState, job: JobFacts) -> dict[str, Any]:
        spec = job.spec
        progress = pruning_progress(
            spec.batch_sizes, spec.default_batch_size, spec.num_pruning_rounds, exploration_history(state)
        )
        done = progress.round_number >= spec.num_pruning_rounds
        return {
            "pruning": {
                # Rounds counted from 1, as people count: ``round`` is the one in progress.
                "round": None if done else progress.round_number + 1,
                "num_rounds": spec.num_pruning_rounds,
                "rounds_done": progress.round_number,
                "done": done,
                "survivors": progress.candidates,
                "default_batch_size": progress.default_batch_size,
            },
            "arms": [arm.to_record() for arm in arm_list(state)],
            "recommendation": _recommendation(state, job),
        }


def _recommendation(state: ZeusState, job: JobFacts) -> dict[str, Any]:
    """The size Zeus's policy would exploit now: in its bandit the observed arm of best
    posterior mean; in pruning the cheapest size so far (what its concurrent trials get)."""
    observed = [arm for arm in arm_list(state) if arm.num_observations > 0]
    meaning = "posterior mean of the arm's cost (-reward)"
    if observed:
        best = max(observed, key=lambda arm: arm.mean)  # ties keep the smaller size
        rule = "the bandit arm of best posterior mean"
        return _recommended(best.batch_size, -best.mean, meaning, best.num_observations, rule)
    if job.min_cost is not None:
        costs = [-reward for reward in job.rewards_of(job.min_cost_batch_size)]
        mean = sum(costs) / len(costs)
        rule = "the cheapest size explored so far"
        return _recommended(job.min_cost_batch_size, mean, "mean cost of its reported trials", len(costs), rule)
    return _recommended(job.spec.default_batch_size, None, meaning, 0, "the default batch size: nothing measured yet")


def _recommended(size: int, mean_cost: float | None, meaning: str, observations: int, rule: str) -> dict[str, Any]:
    return {"batch_size": size, "mean_cost": mean_cost, "mean_cost_meaning": meaning, "observations": observations, "rule": rule}


def arm_list(state: ZeusState) -> list[Arm]:
    return sorted((Arm.from_record(arm) for arm in state["arms"].values()), key=lambda arm: arm.batch_size)


def exploration_history(state: ZeusState) -> dict[int, list[Exploration]]:
    return {
        int(size): [
            Exploration(
                trial_number=record["trial"],
                finished=record["converged"] is not None,
                converged=bool(record["converged"]),
                cost=record["cost"],
            )
            for record in records
        ]
        for size, records in state["explorations"].items()
    }


def _advance_to_bandit(state: ZeusState, job: JobFacts, survivors: list[int]) -> StageAdvance:
    """Arms for the surviving sizes, each fitted on the rewards of its explorations."""
    history = exploration_history(state)
    arms = [
        fit_arm(
            size,
            [-exploration.cost for exploration in history.get(size, []) if exploration.cost is not None],
            job.spec.mab_prior_mean,
            job.spec.mab_prior_precision,
        ).to_record()
        for size in sorted(survivors)
    ]
    return StageAdvance(sorted(survivors), arms)


def _bandit_pick(arms: list[Arm], job: JobFacts) -> Decision:
    generator = restore_generator(job.generator_state)
    choice = choose_arm(arms, job.spec.mab_num_explorations, generator)
    # The arms and the generator state it drew from are known from earlier events; the read
    # model restores them into the trial's "why", so they are not repeated here.
    reason = {"stage": Stage.BANDIT, "phase": choice.phase, "permutation": choice.permutation, "samples": choice.samples}
    return Decision(choice.batch_size, TrialKind.BANDIT, reason, None, generator_state(generator))
