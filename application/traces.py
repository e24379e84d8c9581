"""The port through which the simulator reads training traces; infrastructure implements it."""

from dataclasses import dataclass
from typing import Protocol

import pandas as pd


@dataclass(frozen=True)
class Workload:
    """A recurring training job of the trace: what it trains and what it must reach."""

    dataset: str
    network: str
    optimizer: str
    target_metric: float
    max_epochs: int
    default_batch_size: int


class TraceSource(Protocol):
    """Recorded runs: one row per (batch size, power limit, run) with per-epoch time and power."""

    @property
    def max_power(self) -> float:
        """The job's max_power: the largest power limit in the traces."""

    def workload_rows(self, workload: Workload) -> pd.DataFrame:
        """Every row of this workload at its target metric."""

    def batch_sizes(self, workload: Workload) -> list[int]:
        """Every batch size the traces hold for the workload's model."""
