"""Gaussian Thompson sampling over the batch sizes that survived pruning."""

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class Arm:
    """Posterior belief about one batch size's expected reward (``-cost``)."""

    batch_size: int
    mean: float
    precision: float  # math.inf once every observation agrees
    num_observations: int

    def to_record(self) -> dict[str, Any]:
        """JSON form: an infinite precision is ``null`` with ``precision_infinite`` true.

        (JSON has no infinity; events recorded before this form held the string "inf",
        which ``from_record`` still reads and the events' upcasters rewrite.)
        """
        infinite = math.isinf(self.precision)
        return {
            "batch_size": self.batch_size,
            "mean": self.mean,
            "precision": None if infinite else self.precision,
            "precision_infinite": infinite,
            "num_observations": self.num_observations,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Arm":
        infinite = record.get("precision_infinite") or record["precision"] == "inf"
        return cls(
            batch_size=int(record["batch_size"]),
            mean=float(record["mean"]),
            precision=math.inf if infinite else float(record["precision"]),
            num_observations=int(record["num_observations"]),
        )


def current_arm_record(record: dict[str, Any]) -> dict[str, Any]:
    """An arm record of any recorded form in the current form (for upcasting old events)."""
    return Arm.from_record(record).to_record()


def fit_arm(batch_size: int, rewards: Sequence[float], prior_mean: float, prior_precision: float) -> Arm:
    """Known-precision conjugate update, recomputed from scratch on ``rewards``.

    With no rewards the arm is the prior itself (a cold arm).
    """
    if len(rewards) == 0:
        return Arm(batch_size, prior_mean, prior_precision, 0)
    x = np.asarray(rewards, dtype=np.float64)
    variance = np.var(x)
    if variance == 0.0:
        return Arm(batch_size, float(x.mean()), math.inf, len(x))
    with np.errstate(over="ignore"):
        reward_precision = np.reciprocal(variance)
        precision = prior_precision + len(x) * reward_precision
    if not np.isfinite(precision):  # a spread too small to invert is as good as none
        return Arm(batch_size, float(x.mean()), math.inf, len(x))
    mean = (prior_precision * prior_mean + reward_precision * x.sum()) / precision
    return Arm(batch_size, float(mean), float(precision), len(x))


@dataclass(frozen=True)
class BanditChoice:
    """A bandit decision with the random draws behind it."""

    batch_size: int
    phase: str  # "explore" (an arm still lacks observations) or "thompson"
    permutation: list[int]
    samples: dict[str, float] | None  # batch size (as str) -> sampled expected reward


def choose_arm(arms: Sequence[Arm], num_explorations: int, generator: np.random.Generator) -> BanditChoice:
    """Pick a batch size; advances ``generator`` exactly as Zeus's server does.

    A random permutation is always drawn first; the first arm in it with too few
    observations is explored. Otherwise one normal sample per arm, in ascending
    batch size order, and the largest wins (the first one on ties).
    """
    ordered = sorted(arms, key=lambda arm: arm.batch_size)
    sizes = np.array([arm.batch_size for arm in ordered])
    permutation = [int(size) for size in generator.choice(sizes, len(sizes), replace=False)]
    by_size = {arm.batch_size: arm for arm in ordered}
    for size in permutation:
        if by_size[size].num_observations < num_explorations:
            return BanditChoice(size, "explore", permutation, None)
    samples: dict[str, float] = {}
    best: tuple[float, int] | None = None
    for arm in ordered:
        scale = np.sqrt(np.reciprocal(arm.precision))
        sample = float(generator.normal(arm.mean, scale))
        samples[str(arm.batch_size)] = sample
        if best is None or sample > best[0]:
            best = (sample, arm.batch_size)
    assert best is not None
    return BanditChoice(best[1], "thompson", permutation, samples)
