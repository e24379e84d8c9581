"""The Zeus NSDI '23 training and power traces, as the simulator reads them.

The train trace says, per (workload, batch size, run, target metric), the epoch at
which that run reached the target; the power trace says, per (workload, batch size,
power limit), the seconds per epoch and the average power. Their inner join is one
row per (batch size, power limit, run, target metric) of a workload.
"""

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import pandas as pd

from application.traces import Workload

SHIPPED_GPUS = ("v100", "p100", "rtx6000")


# The six workloads of the paper with the targets and epoch limits Zeus's own
# experiment scripts use; librispeech keeps the default batch size of the reference run.
WORKLOAD_PRESETS: dict[str, Workload] = {
    "cifar100": Workload("cifar100", "shufflenetv2", "adadelta", 0.6, 100, 1024),
    "imagenet": Workload("imagenet", "resnet50", "adadelta", 0.65, 100, 256),
    "librispeech": Workload("librispeech", "deepspeech2", "adamw", 40.0, 16, 192),
    "movielens-1m": Workload("movielens-1m", "ncf", "adam", 0.41, 100, 1024),
    "sentiment140": Workload("sentiment140", "bert_base_uncased", "adamw", 0.84, 10, 128),
    "squad": Workload("squad", "bert_base_uncased", "adamw", 84.0, 6, 32),
}


class TraceError(ValueError):
    """The traces hold no usable data for the requested workload."""


def shipped_trace_dir() -> Path:
    return Path(str(files("infrastructure") / "traces"))


def shipped_train_trace() -> Path:
    return shipped_trace_dir() / "summary_train.csv"


def shipped_power_trace(gpu: str) -> Path:
    if gpu not in SHIPPED_GPUS:
        raise TraceError(f"No shipped power trace for GPU {gpu!r}; shipped: {', '.join(SHIPPED_GPUS)}")
    return shipped_trace_dir() / f"summary_power_{gpu}.csv"


@dataclass(frozen=True)
class Traces:
    """A TraceSource: the joined traces with the per-run and per-epoch figures the simulator needs."""

    joined: pd.DataFrame

    @classmethod
    def load(cls, train_path: Path, power_path: Path) -> "Traces":
        for path in (train_path, power_path):
            if not Path(path).is_file():
                raise TraceError(f"Trace file not found: {path}")
        return cls.join(pd.read_csv(train_path), pd.read_csv(power_path))

    @classmethod
    def join(cls, train: pd.DataFrame, power: pd.DataFrame) -> "Traces":
        joined = train.merge(power, how="inner")
        joined["energy_per_epoch"] = joined.time_per_epoch * joined.average_power
        return cls(joined)

    @property
    def max_power(self) -> float:
        """The job's max_power: the largest power limit anywhere in the power trace."""
        return float(self.joined.power_limit.max())

    def workload_rows(self, workload: Workload) -> pd.DataFrame:
        """Every row of this workload at its target metric (all sizes, limits and runs)."""
        rows = self._model_rows(workload)
        rows = rows.loc[rows.target_metric == workload.target_metric]
        if rows.empty:
            raise TraceError(
                f"No trace rows for {workload.dataset}/{workload.network}/{workload.optimizer} "
                f"at target metric {workload.target_metric}"
            )
        return rows

    def batch_sizes(self, workload: Workload) -> list[int]:
        """Every batch size the joined traces hold for the model, whatever the target."""
        rows = self._model_rows(workload)
        if rows.empty:
            raise TraceError(
                f"No trace rows for {workload.dataset}/{workload.network}/{workload.optimizer}"
            )
        return sorted(int(size) for size in rows.batch_size.unique())

    def _model_rows(self, workload: Workload) -> pd.DataFrame:
        frame = self.joined
        return frame.loc[
            (frame.dataset == workload.dataset)
            & (frame.network == workload.network)
            & (frame.optimizer == workload.optimizer)
        ]
