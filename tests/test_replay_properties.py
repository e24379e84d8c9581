"""Replay properties over random specs and random valid command sequences.

- replaying the whole log gives the live aggregate;
- the state at version N is the state observed right after the command that reached N;
- export, import into another store, replay: the same state again.
"""

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.archive import export_lines, import_lines
from application.audit import JobAudit, state_view
from application.service import BatchSizeOptimizer
from domain.errors import DomainError
from domain.job import Job
from domain.reporting import EpochReport
from infrastructure.settings import persistence_env
from tests.audit_helpers import ManualClock
from tests.helpers import job_spec

LEASE_SECONDS = 3600.0
SIZES = [8, 16, 24, 32, 48, 64]


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    batch_sizes = sorted(draw(st.sets(st.sampled_from(SIZES), min_size=1, max_size=4)))
    rounds = draw(st.integers(0, 2))
    return job_spec(
        job_id="test-prop",
        batch_sizes=batch_sizes,
        default_batch_size=draw(st.sampled_from(batch_sizes)),
        num_pruning_rounds=rounds,
        mab_num_explorations=draw(st.integers(1 if rounds == 0 else 0, 2)),
        beta_knob=draw(st.sampled_from([None, 1.5, 2.0, 4.0])),
        window_size=draw(st.integers(0, 3)),
        mab_prior_precision=draw(st.sampled_from([0.0, 0.5])),
        max_epochs=draw(st.integers(1, 4)),
        mab_seed=draw(st.integers(0, 2**32)),
        policy=draw(st.sampled_from(["zeus", "lsts"])),
        stop_window=draw(st.sampled_from([None, 0, 1, 3])),  # None: the policy's default
        bound_escalation=draw(st.sampled_from([None, False, True])),
        predictive_stop=draw(st.booleans()),
    )


commands = st.lists(
    st.one_of(
        st.tuples(st.just("train"), st.floats(0.1, 1.0), st.floats(0.5, 3.0)),
        st.tuples(st.just("predict")),
        st.tuples(st.just("report"), st.integers(0, 7), st.floats(0.0, 1.0), st.floats(0.5, 3.0)),
        st.tuples(st.just("end"), st.integers(0, 7)),
        st.tuples(st.just("wait"), st.sampled_from([60.0, 2 * LEASE_SECONDS])),
    ),
    min_size=10,
    max_size=40,
)


def _perform(app: BatchSizeOptimizer, clock: ManualClock, command: tuple[Any, ...], epochs: dict[int, int]) -> None:
    job = app.live_job("test-prop")
    open_trials = [n for n in range(1, job.trial_count + 1) if job.trial_status(n) == "Dispatched"] or [1]
    kind = command[0]
    if kind == "train":  # a whole recurrence: predict, then report each epoch until told to stop
        trial = app.predict("test-prop")
        number, size = trial["trial_number"], trial["batch_size"]
        for epoch in range(1, job.spec.max_epochs + 1):
            metric = min(1.0, command[1] * epoch)
            speed = command[2] * size / 16
            if app.report("test-prop", EpochReport(number, size, 10.0 * epoch / speed, 100.0 * epoch, metric, epoch))["stop_train"]:
                break
    elif kind == "predict":
        app.predict("test-prop")
    elif kind == "wait":
        clock.advance(command[1])
    elif job.trial_count == 0:
        return
    else:
        number = open_trials[command[1] % len(open_trials)]
        size = job.trial_batch_sizes[number - 1]
        if kind == "end":
            app.end_trial("test-prop", number, size)
            return
        epoch = epochs[number] = epochs.get(number, 0) + 1
        speed = command[3] * size / 16
        app.report("test-prop", EpochReport(number, size, 10.0 * epoch / speed, 100.0 * epoch, command[2], epoch))


def _comparable(job: Job) -> dict[str, Any]:
    return {key: value for key, value in vars(job).items() if key != "_pending_events"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), script=commands, delete_at_end=st.booleans())
def test_replay_time_travel_and_export_import_agree_with_live_state(
    spec: dict[str, Any], script: list[tuple[Any, ...]], delete_at_end: bool
) -> None:
    clock = ManualClock()
    app = BatchSizeOptimizer(env=persistence_env("memory://"), clock=clock, lease_seconds=LEASE_SECONDS)
    copy = BatchSizeOptimizer(env=persistence_env("memory://"))
    try:
        app.register_job(spec)
        audit = JobAudit(app)
        observed = {1: state_view(app.live_job("test-prop"))}
        epochs: dict[int, int] = {}
        for command in script:
            try:
                _perform(app, clock, command, epochs)
            except DomainError:
                pass  # refused commands (e.g. a round with no converged size) record nothing
            live = app.live_job("test-prop")
            observed[live.version] = state_view(live)
        live = app.live_job("test-prop")
        if delete_at_end:
            app.delete_job("test-prop")
            live = app.repository.get(live.id)
            observed[live.version] = state_view(live)

        assert _comparable(audit.replay("test-prop")) == _comparable(live)
        for version, state in observed.items():
            assert audit.state("test-prop", version=version) == state
            assert state_view(audit.replay("test-prop", version=version)) == state

        import_lines(copy, export_lines(audit, "test-prop"))
        assert _comparable(JobAudit(copy).replay("test-prop")) == _comparable(live)
        assert JobAudit(copy).state("test-prop") == state_view(live)
    finally:
        app.close()
        copy.close()
