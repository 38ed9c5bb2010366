"""Paired significance between two runs on the same documents: McNemar's exact test on per-document
correctness and a seeded paired bootstrap interval for the difference of leaderboard scores."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalsuite.benchmarks.spec import BenchmarkSpec
from evalsuite.compare.verdict import PairedVerdict, decide
from evalsuite.errors import CompareError, RunDirError
from evalsuite.results import DocRecord, RunResult, read_samples
from evalsuite.scoring import macro_mean

if TYPE_CHECKING:
    import numpy as np

DEFAULT_SEED = 20240101
DEFAULT_RESAMPLES = 10_000
DEFAULT_CONFIDENCE = 0.95
# Per-document metrics that are 0 or 1 (right or wrong): McNemar applies. mc2 is a probability mass
# on the true answers, continuous in [0, 1], so TruthfulQA gets only the bootstrap interval.
# Keeps one block of multinomial draws (resamples x distinct values) to a few tens of MB.
_BLOCK_CELLS = 1 << 22


@dataclass(frozen=True)
class PairedResult:
    """Run b against run a on one benchmark; `reason` says why there is no paired test (all else None)."""

    benchmark: str
    metric: str
    n_docs: int | None = None
    score_a: float | None = None
    score_b: float | None = None
    delta: float | None = None  # score_b - score_a, from the samples
    ci_low: float | None = None
    ci_high: float | None = None
    mcnemar_p: float | None = None  # None for continuous metrics (mc2)
    only_a: int | None = None  # documents that only run a got right
    only_b: int | None = None
    reason: str | None = None
    # Every document the same result as the other run's by evalsuite verify's policy (log-likelihoods
    # within its tolerance, as between the fast and hf backends, or two GPUs, on one model): never a
    # difference, whatever the interval.
    within_rounding: bool | None = None
    identical: bool | None = None  # every document's value and outputs bit for bit the other run's

    @property
    def significant(self) -> bool | None:
        """Whether the bootstrap interval excludes 0 (and the difference is more than float rounding)."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return not self.within_rounding and (self.ci_low > 0 or self.ci_high < 0)

    @property
    def verdict(self) -> PairedVerdict:
        return decide(
            reason=self.reason,
            identical=bool(self.identical),
            within_rounding=bool(self.within_rounding),
            excludes_zero=bool(self.significant),
        )


def _same_result(
    a: RunResult, b: RunResult, spec: BenchmarkSpec, pairs: Sequence[tuple[DocRecord, DocRecord]]
) -> tuple[bool, bool]:
    """(within rounding, bit for bit) of b's documents against a's: `evalsuite verify`'s verdict under the
    policy of both runs' dtypes (same result; exact)."""
    from evalsuite.fidelity.tolerance import Tolerance, compare_benchmark
    from evalsuite.fidelity.tolerance import Verdict as Rule

    tol = Tolerance.for_dtypes(a.model.dtype, b.model.dtype)
    rule = compare_benchmark(spec, [da for da, _ in pairs], [db for _, db in pairs], tol).verdict
    return rule is not Rule.DIFFERS, rule is Rule.EXACT


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> tuple[float, int, int]:
    """Exact McNemar p-value on per-document correctness, with the discordant counts (only a, only b)."""
    import numpy as np
    from statsmodels.stats.contingency_tables import mcnemar

    ra, rb = np.asarray(a) == 1, np.asarray(b) == 1
    table = [[int(np.sum(ra & rb)), int(np.sum(ra & ~rb))], [int(np.sum(~ra & rb)), int(np.sum(~ra & ~rb))]]
    return float(mcnemar(table, exact=True).pvalue), table[0][1], table[1][0]


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    strata: Sequence[str | None] | None = None,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[float, float, float]:
    """score(b) - score(a) and its percentile interval from resampling documents (pairs) with replacement.

    The score is the mean of the per-document values or, with strata, the unweighted mean over strata
    of the within-stratum means (MMLU's macro mean over subjects). Documents are then resampled within
    their stratum, so that every resample keeps each subject's size, as the real test set does.
    scipy.stats.bootstrap cannot stratify, hence this small resampler (without strata it is the
    plain paired bootstrap, and agrees with scipy's; tests/test_compare.py checks that).
    """
    import numpy as np

    if not 0 < confidence < 1:
        raise CompareError(f"confidence {confidence} must be between 0 and 1, e.g. 0.95")
    if seed < 0:
        raise CompareError(f"seed {seed} must be a whole number, 0 or more")
    if n_resamples < 1:
        raise CompareError(f"n_resamples {n_resamples} must be 1 or more, e.g. {DEFAULT_RESAMPLES}")
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if strata is None:
        groups = [diff]
    else:
        labels = np.asarray(strata, dtype=object)
        groups = [diff[labels == s] for s in dict.fromkeys(labels.tolist())]
    if not groups or any(len(g) == 0 for g in groups):
        raise CompareError("no documents to compare; both runs must hold samples for the benchmark")
    rng = np.random.default_rng(seed)
    means = np.zeros(n_resamples)
    for g in groups:
        means += _resampled_means(g, n_resamples, rng)
    means /= len(groups)
    point = float(np.mean([g.mean() for g in groups]))
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return point, float(low), float(high)


def _resampled_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_resamples` samples of len(values) drawn with replacement.

    Drawing n documents with replacement is drawing multinomial counts over the distinct values
    (each with probability its frequency): identical in distribution, and only three cells per
    resample for 0/1 metrics (differences -1, 0, 1) instead of one per document.
    """
    import numpy as np

    distinct, counts = np.unique(values, return_counts=True)
    n = len(values)
    block = max(1, _BLOCK_CELLS // len(distinct))
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        out[start : start + size] = rng.multinomial(n, counts / n, size=size) @ distinct / n
    return out


def align(
    spec: BenchmarkSpec, docs_a: Sequence[DocRecord], docs_b: Sequence[DocRecord]
) -> list[tuple[DocRecord, DocRecord]]:
    """Pairs of the same document in both runs; CompareError (the reason) unless both evaluated exactly
    the same documents with the same prompts (same ids but other prompts: other data or shots)."""
    by_key_a, by_key_b = {d.key: d for d in docs_a}, {d.key: d for d in docs_b}
    for docs, by_key in ((docs_a, by_key_a), (docs_b, by_key_b)):
        if len(by_key) != len(docs):
            raise CompareError(f"{spec.name}: a run lists the same document twice in its samples; re-run it")
    if by_key_a.keys() != by_key_b.keys():
        common = len(by_key_a.keys() & by_key_b.keys())
        raise CompareError(
            f"{spec.name}: runs evaluated different documents ({len(by_key_a)} vs {len(by_key_b)} docs, "
            f"{common} in common)"
        )
    pairs = [(by_key_a[k], by_key_b[k]) for k in by_key_a]
    other = sum(_prompts(da) != _prompts(db) for da, db in pairs)
    if other:
        raise CompareError(
            f"{spec.name}: same document ids but different prompts in {other} of {len(pairs)} docs "
            "(other data or few-shot examples)"
        )
    missing = [d.doc_id for pair in pairs for d in pair if spec.metric not in d.metrics]
    if missing:
        raise CompareError(f"{spec.name}: no per-document {spec.metric} for doc {missing[0]}; re-run it")
    return pairs


def _prompts(doc: DocRecord) -> tuple[tuple[str, str | None], ...]:
    return tuple((r.context, r.continuation) for r in doc.requests)


def _docs(run: RunResult, spec: BenchmarkSpec, label: str) -> list[DocRecord]:
    if run.provenance.source == "card":
        raise CompareError(f"{spec.name}: {label} is a published card, it has no per-document samples")
    if run.path is None:
        raise CompareError(f"{spec.name}: {label} was not loaded from a run directory, so it has no samples")
    if spec.name not in run.scores:
        raise CompareError(f"{spec.name}: not evaluated by {label}")
    try:
        return read_samples(run.path, spec.name)
    except RunDirError as exc:
        raise CompareError(f"{spec.name}: {exc}") from None


def paired_test(
    a: RunResult,
    b: RunResult,
    spec: BenchmarkSpec,
    *,
    labels: tuple[str, str] = ("a", "b"),
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedResult:
    """Run b against run a on one benchmark's leaderboard metric, or the reason there is no paired test."""
    try:
        pairs = align(spec, _docs(a, spec, labels[0]), _docs(b, spec, labels[1]))
    except CompareError as exc:
        return PairedResult(spec.name, spec.metric, reason=str(exc))
    va = [da.metrics[spec.metric] for da, _ in pairs]
    vb = [db.metrics[spec.metric] for _, db in pairs]
    for label, values, side in ((labels[0], va, 0), (labels[1], vb, 1)):
        bad = [pair[side].doc_id for pair, v in zip(pairs, values, strict=True) if not math.isfinite(v)]
        if bad:  # a NaN makes every resample NaN: no interval, and no verdict of any kind
            return PairedResult(
                spec.name,
                spec.metric,
                reason=f"{label} has a non-finite {spec.metric} on {len(bad)} documents (doc {bad[0]} first)",
            )
    strata = [da.subject for da, _ in pairs] if len(spec.configs) > 1 else None
    delta, low, high = paired_bootstrap(va, vb, strata, n_resamples=n_resamples, seed=seed, confidence=confidence)
    p = only_a = only_b = None
    if spec.binary:
        # MMLU: one 2x2 table pooled over all subjects (do the discordant docs split evenly?).
        p, only_a, only_b = mcnemar_exact(va, vb)
    rounding, exact = _same_result(a, b, spec, pairs)
    return PairedResult(
        benchmark=spec.name,
        metric=spec.metric,
        within_rounding=rounding,
        # exact: the policy's word for bit-identical outputs; the metric's values must match too
        identical=exact and va == vb,
        n_docs=len(pairs),
        score_a=macro_mean(va, strata),
        score_b=macro_mean(vb, strata),
        delta=delta,
        ci_low=low,
        ci_high=high,
        mcnemar_p=p,
        only_a=only_a,
        only_b=only_b,
    )
