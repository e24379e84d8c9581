"""Stored event names are explicit and stable; old event versions are upcast on read."""

import json
from array import array
from typing import Any, Iterator
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic

from application.audit import JobAudit
from application.service import BatchSizeOptimizer
from application.transcodings import ArrayAsList, ChunkedArrayAsBytes
from domain.chunked_array import ChunkedArray
from domain.job import Job
from domain.job_name import JobName
from domain.zeus_policy import arm_list
from infrastructure.settings import persistence_env
from tests.audit_helpers import ManualClock, train
from tests.helpers import job_spec


@pytest.fixture
def app() -> Iterator[BatchSizeOptimizer]:
    optimizer = BatchSizeOptimizer(env=persistence_env("memory://"), clock=ManualClock())
    yield optimizer
    optimizer.close()


def _declared_topics(aggregate: type) -> dict[str, type]:
    """Explicit topics of the aggregate's own event classes."""
    return {
        value.TOPIC: value
        for name, value in vars(aggregate).items()
        if isinstance(value, type) and name != "Event" and getattr(value, "TOPIC", None)
    }


def test_every_stored_topic_is_an_explicit_name_not_a_python_path(app: BatchSizeOptimizer) -> None:
    app.register_job(job_spec(job_id="test-topics"))
    for _ in range(12):
        train(app, "test-topics")
    app.end_trial("test-topics", app.predict("test-topics")["trial_number"], app.live_job("test-topics").trial_batch_sizes[-1])
    app.delete_job("test-topics")
    stored_topics = {n.topic for n in app.recorder.select_notifications(1, 10_000)}
    declared = {**_declared_topics(Job), **_declared_topics(JobName)}
    assert stored_topics <= set(declared)
    # The stored name resolves through the registry, not through a module path and class name.
    assert all(resolve_topic(topic) is declared[topic] for topic in stored_topics)
    assert {"bso.Job.Registered", "bso.Job.TrialDispatched", "bso.Job.TrialReported", "bso.Job.StageAdvancedToMAB",
            "bso.Job.TrialEnded", "bso.Job.Deleted", "bso.JobName.Created", "bso.JobName.Released"} <= stored_topics
    assert all(topic.startswith("bso.") and ":" not in topic for topic in stored_topics)


def test_a_version_1_registration_is_read_back_upcast(app: BatchSizeOptimizer) -> None:
    _, spec = app.register_job(job_spec(job_id="test-current"))
    current = app.recorder.select_events(app.live_job("test-current").id, limit=1)[0]
    state = json.loads(current.state)
    assert state.pop("class_version") == Job.Registered.class_version == 3
    del state["policy_version"]  # what version 1 of the event held: no policy version...
    state["spec"] = state["spec"]["_data_"]  # ...and the spec as a plain object
    old_uuid = uuid4()
    app.recorder.insert_events(
        [StoredEvent(originator_id=old_uuid, originator_version=1, topic=current.topic, state=json.dumps(state).encode())]
    )

    job = app.repository.get(old_uuid)
    assert isinstance(job, Job)
    assert job.policy_version == 1
    assert job.spec.to_record() == spec
    events = JobAudit(app).events(str(old_uuid))["events"]
    assert events[0]["type"] == "bso.Job.Registered"
    assert events[0]["payload"]["policy_version"] == 1


def test_version_1_arm_records_with_the_string_inf_are_read_back_as_null_with_a_flag(app: BatchSizeOptimizer) -> None:
    app.register_job(job_spec(job_id="test-inf", batch_sizes=[16, 32], default_batch_size=32, num_pruning_rounds=1))
    for _ in range(3):  # two explorations (one run per arm: infinite precision), one bandit trial
        train(app, "test-inf")
    job = app.live_job("test-inf")
    stored = app.recorder.select_events(job.id)
    old_uuid = uuid4()
    rewritten = []
    for event in stored:  # the same history as version-1 events would have stored it
        state = json.loads(event.state)
        if event.topic in ("bso.Job.StageAdvancedToMAB", "bso.Job.TrialReported"):
            state["class_version"] = 1
            for arm in state.get("arms", []) + ([state["arm"]] if state.get("arm") else []):
                infinite = arm.pop("precision_infinite")
                arm["precision"] = "inf" if infinite else arm["precision"]
        rewritten.append(StoredEvent(old_uuid, event.originator_version, event.topic, json.dumps(state).encode()))
    assert any(b'"inf"' in event.state for event in rewritten)
    app.recorder.insert_events(rewritten)

    replayed = app.repository.get(old_uuid)
    assert arm_list(replayed.policy_state) == arm_list(job.policy_state)
    assert any(arm.precision == float("inf") for arm in arm_list(replayed.policy_state))
    events = JobAudit(app).events(str(old_uuid), 0, 1000)["events"]
    assert '"inf"' not in json.dumps(events)
    assert any(arm.get("precision_infinite") for event in events for arm in event["payload"].get("arms", []))


def test_a_version_3_snapshot_with_per_trial_lists_is_read_back_as_arrays(app: BatchSizeOptimizer) -> None:
    app.register_job(job_spec(job_id="test-v3", batch_sizes=[16, 32], default_batch_size=32, num_pruning_rounds=1))
    for _ in range(4):
        train(app, "test-v3")
    app.end_trial("test-v3", app.predict("test-v3")["trial_number"], app.live_job("test-v3").trial_batch_sizes[-1])
    app.predict("test-v3")  # stays open
    job = app.live_job("test-v3")
    assert set(job.trial_statuses()) == {"Succeeded", "Failed", "Dispatched"}
    state = _as_version_4(Job.Snapshot.take(job).state)  # what version 3 held instead of the two arrays:
    state.update(class_version=3, trial_batch_sizes=job.trial_batch_sizes.tolist())
    state["rewards"] = {size: items.to_array() for size, items in job.rewards.items()}
    state["reward_trials"] = {size: items.to_array() for size, items in job.reward_trials.items()}
    state["trial_statuses"] = [str(job.trial_status(n)) for n in range(1, job.trial_count + 1)]
    state["trial_converged"] = [job.trial_converged(n) for n in range(1, job.trial_count + 1)]
    del state["trial_outcomes"]
    old = Job.Snapshot(originator_id=job.id, originator_version=job.version, timestamp=job.modified_on,
                       topic=Job.Snapshot.take(job).topic, state=state)
    assert app.snapshots is not None
    app.snapshots.put([old])

    rebuilt = app.repository.get(job.id, version=job.version)  # from that snapshot, no events after it
    assert _known_to_version_4(rebuilt) == _known_to_version_4(job)
    assert rebuilt.trial_converged(1) is not None and rebuilt.trial_converged(job.trial_count) is None


def _as_version_4(state: dict[str, Any]) -> dict[str, Any]:
    """A version-5 snapshot's state as version 4 held it: each policy's state in attributes of
    its own, open trials as when they were last heard from, no stop-rule bookkeeping."""
    state = dict(state, class_version=4)
    policy_state, open_trials = state.pop("policy_state"), state.pop("open_trials")
    for name in ("stopped_in_a_row", "last_converged_trial", "fewest_epochs"):
        del state[name]
    state["open_trials"] = {number: trial["heard"] for number, trial in open_trials.items()}
    lsts_names = {"Exploration": "exploration", "Concurrent": "concurrent", "MAB": "bandit"}
    if state["spec"].policy == "lsts":
        stage = "MAB" if policy_state["phase"] == "bandit" else "LocalSearch"
        runs = {n: {"kind": lsts_names[t["kind"]], "bound": t["bound"], "cost": t["cost"]} for n, t in open_trials.items()}
        state.update(stage=stage, explorations={}, arms={}, lsts=policy_state, lsts_runs=runs)
    else:
        state.update(policy_state, lsts=None, lsts_runs={})
    return state


def _known_to_version_4(job: Job) -> dict[str, Any]:
    """What a version-4 snapshot could restore: not the fewest epochs any run converged in."""
    return {name: value for name, value in vars(job).items() if name != "fewest_epochs"}


@pytest.mark.parametrize("policy", ["zeus", "lsts"])
def test_a_version_4_snapshot_is_read_back_with_the_policy_state_in_one_place(app: BatchSizeOptimizer, policy: str) -> None:
    job_id = f"test-v4-{policy}"
    app.register_job(job_spec(job_id=job_id, batch_sizes=[16, 32, 64], default_batch_size=32, num_pruning_rounds=1, policy=policy))
    for _ in range(5):
        train(app, job_id)
    app.predict(job_id)  # stays open
    job = app.live_job(job_id)
    old = Job.Snapshot(originator_id=job.id, originator_version=job.version, timestamp=job.modified_on,
                       topic=Job.Snapshot.take(job).topic, state=_as_version_4(Job.Snapshot.take(job).state))
    assert app.snapshots is not None
    app.snapshots.put([old])

    rebuilt = app.repository.get(job.id, version=job.version)
    assert _known_to_version_4(rebuilt) == _known_to_version_4(job)
    assert rebuilt.fewest_epochs is None


def test_arrays_in_snapshots_keep_every_bit_and_version_3_item_lists_still_decode() -> None:
    transcoding = ChunkedArrayAsBytes()
    rewards = ChunkedArray("d", [-0.1, -1e308, -5e-324, -123.456] * 600)
    encoded = json.loads(json.dumps(transcoding.encode(rewards)))
    assert transcoding.decode(encoded) == rewards
    assert ArrayAsList().decode({"typecode": "q", "items": [3, 1, 2]}) == array("q", [3, 1, 2])
