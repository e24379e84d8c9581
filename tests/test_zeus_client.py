"""Zeus's own client class, unchanged, against a running ``bso serve``.

The client needs GPUs to read the power limit and a monitor to measure epochs;
only those two hardware probes are replaced. Every HTTP exchange is the client's own.
"""

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import running_server

zeus_client = pytest.importorskip(
    "zeus.optimizer.batch_size.client", reason="install the test extra: python -m pip install -e '.[test]'"
)
from zeus.optimizer.batch_size.common import JobSpec  # noqa: E402
from zeus.optimizer.batch_size.exceptions import ZeusBSOTrainFailError  # noqa: E402


class OneV100:
    def __len__(self) -> int:
        return 1

    def get_power_management_limit_constraints(self, index: int) -> tuple[int, int]:
        return (100_000, 250_000)  # milliwatts

    def get_name(self, index: int) -> str:
        return "Tesla V100-PCIE-32GB"


@dataclass
class Measurement:
    time: float
    total_energy: float


class EpochMonitor:
    """Each epoch takes 10 s and 2 kJ per 32 samples of batch size (bigger is cheaper)."""

    gpu_indices = [0]

    def __init__(self) -> None:
        self.batch_size = 32

    def begin_window(self, name: str) -> None:
        pass

    def end_window(self, name: str) -> Measurement:
        return Measurement(time=10.0, total_energy=2000.0 * 32 / self.batch_size)


def test_zeus_client_registers_trains_and_ends_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zeus_client, "get_gpus", lambda ensure_homogeneous: OneV100())
    exit_hooks: list = []
    monkeypatch.setattr(zeus_client.atexit, "register", exit_hooks.append)
    spec = JobSpec(job_id=None, job_id_prefix="zeus", batch_sizes=[64, 16, 32], default_batch_size=32,
                   target_metric=0.5, max_epochs=4, mab_seed=1)
    monitor = EpochMonitor()
    chosen = []
    with running_server(f"sqlite:///{tmp_path / 'zeus.db'}", tmp_path) as server:
        for _ in range(8):
            bso = zeus_client.BatchSizeOptimizer(monitor, server.url, spec)
            assert bso.job.job_id.startswith("zeus-") and bso.job.max_power == 250
            spec = JobSpec(**{**spec.dict(), "job_id": bso.job.job_id})  # later recurrences reuse the id
            monitor.batch_size = bso.get_batch_size()
            chosen.append((bso.trial_number, monitor.batch_size))
            bso.on_train_begin()
            reaches_target = monitor.batch_size != 16  # size 16 never converges
            try:
                for epoch in range(1, 5):
                    bso.on_evaluate(0.6 if reaches_target and epoch == 2 else 0.1)
                    if bso.training_finished:
                        break
            except ZeusBSOTrainFailError as failure:
                assert not reaches_target
                assert "max_epoch(4)" in str(failure) or "exceeded the cost upper bound" in str(failure)
            else:
                assert reaches_target and bso.training_finished
            exit_hooks.pop()()  # the client's PATCH /trials at interpreter exit
    numbers = [number for number, _ in chosen]
    assert numbers == list(range(1, 9))
    assert [size for _, size in chosen[:3]] == [32, 16, 64]
