"""The flat, one-row-per-trial table of a job: ``GET /v1/jobs/{id}/trials.csv``, ``bso trials``
and ``api.client.Client.trials_dataframe`` all use these columns, in this order.

Rows are built from the audit view of the trials with their ``why``; the ``why_*``
columns keep the part of the recorded reason that fits in one cell (the arms and
samples of a bandit pick stay in ``GET /v1/jobs/{id}/trials/{n}``).
"""

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from api.csv_text import csv_text


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # the pandas dtype the client reads the column as ("datetime": ISO-8601, UTC)
    meaning: str


TRIAL_COLUMNS: tuple[Column, ...] = (
    Column("number", "Int64", "trial number, from 1"),
    Column("batch_size", "Int64", "batch size handed out"),
    Column("kind", "string", "Exploration (pruning), Concurrent (stand-in while one runs) or MAB (bandit)"),
    Column("status", "string", "Dispatched, Succeeded or Failed"),
    Column("stop_reason", "string", "reached_target, cost_bound, predicted_cost_bound (predictive stop), max_epochs, ended or expired"),
    Column("converged", "boolean", "reached the target within the cost bound"),
    Column("epochs_reported", "Int64", "epoch reports received"),
    Column("epoch", "Int64", "last epoch reported"),
    Column("time", "Float64", "cumulative seconds at the last report"),
    Column("energy", "Float64", "cumulative joules at the last report"),
    Column("metric", "Float64", "validation metric at the last report"),
    Column("cost", "Float64", "energy-time cost at the last report"),
    Column("dispatched_at", "datetime", "when the batch size was handed out (ISO-8601)"),
    Column("finished_at", "datetime", "when the trial finished, ended or expired (ISO-8601)"),
    Column("why_stage", "string", "stage that chose the batch size: Pruning or MAB"),
    Column("why_round", "Int64", "pruning round of the choice, counted from 1"),
    Column("why_direction", "string", "pruning walk direction: down or up (explorations)"),
    Column("why_phase", "string", "bandit phase: explore or thompson"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(column.name for column in TRIAL_COLUMNS)


def trial_row(trial: dict[str, Any]) -> dict[str, Any]:
    """One trial of ``JobAudit.trials(..., why=True)`` as a row of the table."""
    why = trial.get("why") or {}
    flat = {**trial, **{f"why_{key}": why.get(key) for key in ("stage", "round", "direction", "phase")}}
    return {name: flat.get(name) for name in COLUMN_NAMES}


def trial_rows(trials: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [trial_row(trial) for trial in trials]


def trials_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV with a header line; a missing value is an empty cell."""
    return csv_text(rows, COLUMN_NAMES)
