"""The Job's cheap copy is still a real copy: commands on the copy never touch the original."""

import copy
from datetime import timedelta

from domain.job import Job
from domain.reporting import EpochReport
from tests.test_pruning import T0, finish, new_job


def job_in_bandit_stage() -> Job:
    job = new_job(batch_sizes=[16, 32], default_batch_size=32, num_pruning_rounds=1, window_size=3)
    for cost in (100.0, 80.0):
        trial = job.dispatch_trial(T0)
        finish(job, trial.number, trial.batch_size, cost)
    job.dispatch_trial(T0)  # switches to the bandit; this trial stays open
    job.collect_events()
    return job


def test_commands_on_a_copy_leave_the_original_unchanged() -> None:
    original = job_in_bandit_stage()
    before = copy.deepcopy(vars(original))  # a generic deep copy of the state, for comparison
    clone = copy.deepcopy(original)
    assert clone == original

    for _ in range(4):  # refits arms, moves min cost, grows every per-trial list
        trial = clone.dispatch_trial(T0)
        finish(clone, trial.number, trial.batch_size, 50.0)
    running = clone.dispatch_trial(T0)
    clone.report(EpochReport(running.number, running.batch_size, 1.0, 1.0, 0.1, 1), T0)  # progress
    clone.end_trial(3, original.trial_batch_sizes[2], T0)
    clone.expire_stale_trials(T0 + timedelta(days=2), 60.0)
    clone.delete(T0)

    assert vars(original) == before
    assert clone != original


def test_exploration_records_are_not_shared() -> None:
    original = new_job(batch_sizes=[16, 32], default_batch_size=32)
    trial = original.dispatch_trial(T0)
    clone = copy.deepcopy(original)
    finish(clone, trial.number, trial.batch_size, 10.0)  # updates the exploration record in place
    assert original.policy_state["explorations"]["32"][0]["cost"] is None
    assert clone.policy_state["explorations"]["32"][0]["cost"] == 10.0
