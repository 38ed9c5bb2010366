"""The scoring rules, written once: the mean and its standard error, the macro mean over strata (MMLU's
subjects) and the leaderboard average over the benchmarks the table marks `in_average`.

Runner, comparison, bootstrap and card all use these, so a score means the same thing everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K")


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)  # as v1 (lm_eval.metrics.mean): plain sum, for identical bits


def stderr(xs: Sequence[float]) -> float | None:
    """Standard error of the mean with the sample standard deviation, as lm-eval and v1 report it."""
    if len(xs) < 2:
        return None
    mu = mean(xs)
    return math.sqrt(math.fsum((x - mu) ** 2 for x in xs) / (len(xs) - 1)) / math.sqrt(len(xs))


def by_stratum(values: Sequence[float], strata: Sequence[K]) -> dict[K, list[float]]:
    """The values grouped by stratum, strata in order of first appearance."""
    groups: dict[K, list[float]] = {}
    for v, s in zip(values, strata, strict=True):
        groups.setdefault(s, []).append(v)
    return groups


def macro_mean(values: Sequence[float], strata: Sequence[K] | None = None) -> float:
    """The unweighted mean over strata of the within-stratum means (no strata: the plain mean)."""
    if strata is None:
        return mean(values)
    return mean([mean(g) for g in by_stratum(values, strata).values()])


def macro_stderr(errors: Sequence[float | None]) -> float | None:
    """Standard error of a macro mean from its strata's errors (None when one of them has none)."""
    if any(e is None for e in errors):
        return None
    return math.sqrt(math.fsum(e * e for e in errors if e)) / len(errors)


def in_average() -> tuple[str, ...]:
    """The benchmarks whose mean is the leaderboard average ("Avg."), in table order."""
    from evalsuite.benchmarks.table import BENCHMARKS

    return tuple(spec.name for spec in BENCHMARKS if spec.in_average)


def leaderboard_average(scores: Mapping[str, float], names: Callable[[], Sequence[str]] = in_average) -> float | None:
    """The mean of the `in_average` benchmarks' scores; None unless every one of them is there."""
    wanted = names()
    if any(name not in scores for name in wanted):
        return None
    return mean([scores[name] for name in wanted])
