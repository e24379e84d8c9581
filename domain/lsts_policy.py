"""LSTS (domain/lsts.py, POLICY.md) as a job's policy.

Its state is LSTS's own (``lsts.LstsState``): the walk, the observations, the arms. A run's
bound is set when it is dispatched; with ``stop_window`` its reference comes from the
recent converged runs the job holds.
"""

import math
from typing import Any

from domain import lsts
from domain.bounds import BoundBasis
from domain.enums import Stage, TrialKind
from domain.policy import Decision, Dispatched, JobFacts, Observation, Observed, PolicyFact
from domain.spec import LSTS, JobSpec

# LSTS's names for the kinds of run, and the trial kinds the job records for them.
TRIAL_KINDS = {lsts.EXPLORATION: TrialKind.EXPLORATION, lsts.CONCURRENT: TrialKind.CONCURRENT, lsts.BANDIT_RUN: TrialKind.BANDIT}
_KIND_NAMES = {kind: name for name, kind in TRIAL_KINDS.items()}


class LstsPolicy:
    name = LSTS
    version = 1
    bounds_fixed_at_dispatch = True

    def initial_state(self, spec: JobSpec) -> lsts.LstsState:
        return lsts.initial_state(spec.default_batch_size)

    def copy_state(self, state: lsts.LstsState) -> lsts.LstsState:
        # Its steps are replaced whole, its lists and dicts changed in place.
        copy = dict(state)
        copy["log_costs"] = {size: list(values) for size, values in state["log_costs"].items()}
        copy["cheapest"] = dict(state["cheapest"])
        copy["failures"] = dict(state["failures"])
        copy["explored"] = list(state["explored"])
        copy["arms"] = list(state["arms"])
        return copy  # type: ignore[return-value]

    def stage(self, state: lsts.LstsState) -> Stage:
        return Stage.BANDIT if state["phase"] == lsts.BANDIT else Stage.LOCAL_SEARCH

    def decide(self, state: lsts.LstsState, job: JobFacts) -> Decision:
        knobs = job.spec.lsts_knobs()
        dispatch = lsts.decide_dispatch(
            state, knobs, job.spec.default_batch_size, job.generator_state, _recent_costs(job)
        )
        reason = {"policy": LSTS, **dispatch.why}
        kind = TRIAL_KINDS[dispatch.kind]
        step: dict[str, Any] | None = None if dispatch.in_flight is None else dict(dispatch.in_flight)
        return Decision(dispatch.batch_size, kind, reason, dispatch.cost_bound, dispatch.generator_state, step)

    def bound_basis(self, state: lsts.LstsState, job: JobFacts) -> BoundBasis:
        return lsts.bound_terms(state, job.spec.lsts_knobs(), _recent_costs(job))

    def observe(
        self,
        state: lsts.LstsState,
        job: JobFacts,
        number: int,
        kind: TrialKind,
        converged: bool,
        cost: float | None,
        reported: bool,
    ) -> Observation:
        """Every finished run (reported, ended or expired) is judged by LSTS's rules."""
        spec = job.spec
        observation = lsts.judge_result(
            state,
            spec.lsts_knobs(),
            spec.batch_sizes,
            spec.default_batch_size,
            job.trial_batch_size(number),
            _KIND_NAMES[kind],
            converged,
            cost,
        )
        return Observation(record=observation.to_record())

    def apply(self, state: lsts.LstsState, fact: PolicyFact) -> None:
        if isinstance(fact, Dispatched):
            lsts.start_step(state, fact.step)  # type: ignore[arg-type]
        elif isinstance(fact, Observed):
            lsts.apply_observation(state, lsts.Observation.from_record(fact.record))

    def describe(self, state: lsts.LstsState, job: JobFacts) -> dict[str, Any]:
        # LSTS's own state (walk, observations, arms) beside its arms in the shape of Zeus's.
        size, mean_log_cost, observations = lsts.exploited(state, job.spec.default_batch_size)
        in_bandit = state["phase"] == lsts.BANDIT
        recommendation = {
            "batch_size": size,
            "mean_cost": None if mean_log_cost is None else math.exp(mean_log_cost),
            "mean_cost_meaning": "exp(mean log cost): geometric mean of its costs, failed runs penalised",
            "observations": observations,
            "rule": "the arm of lowest mean log cost" if in_bandit else "the explored size of lowest mean log cost so far",
        }
        if mean_log_cost is None:
            recommendation["rule"] = "the default batch size: nothing measured yet"
        return {"arms": lsts.arm_beliefs(state, job.spec.lsts_knobs()), "lsts": state, "recommendation": recommendation}


def _recent_costs(job: JobFacts) -> lsts.RecentCosts | None:
    window = job.spec.stop_window or 0
    if window == 0:
        return None
    return lambda batch_size: job.recent_converged_costs(batch_size, window)
