"""The tolerance policy: when two evaluations of one benchmark count as the same result.

On one CPU a faithful harness reproduces v1 bit for bit; another CPU's float32 kernels (or a GPU, a
dtype, a batch size, a backend) move log-likelihoods by a few ULPs. With ε the log-likelihood tolerance:

- contexts, continuations and generations are byte-identical;
- each log-likelihood is within ε;
- 0/1 metrics (acc, acc_norm, mc1, generation accuracy) are identical, except near-ties: documents where
  the reference's best choice and another are closer than the sum of what ε moves each (ε per character
  of the choice for acc_norm), so that two lls moving by ε in opposite directions can swap them; those
  are reported, not failed;
- mc2 is within a relative e^(2ε) - 1: each probability moves by a factor in [e^-ε, e^ε], so each of
  its two sums does too, and their ratio by at most e^(±2ε);
- the score is recomputed from the per-document values on both sides: accuracies identical (once the
  flipped near-ties take the run's values), mc2 within the same bound, and the card's two-decimal
  percentage identical.

ε depends on the precision the two runs computed in (`Tolerance.for_dtypes`):

- float32: a constant 1e-4 nats, far above the kernels' differences (a few ULPs, ~1e-6 at these sizes).
- bfloat16 / float16: v1 summed a continuation's log-probabilities in the model's dtype, so a
  log-likelihood is a number of that format, and the format's spacing at its magnitude is the smallest
  difference it can show (bfloat16 keeps 8 significant bits: 0.125 between -16 and -32, 1 between -128
  and -256; float16 11). ε is a number of spacings of the larger of the two values: one for the final
  rounding (two sums that differ by a hair round to neighbours), the rest for the rounding inside the
  model, which moves when the same inputs are computed in other shapes (another batch size, a prefix
  reused from the cache). Measured on the reference models (bench/RESULTS.md), the exact path at batch
  size 8 and the fast backend moved lls by at most 2 bfloat16 spacings and 9 float16 spacings (float16's
  finer grid shows the same noise as more spacings); 1 + that, rounded up to a power of two for another
  machine's kernels, gives 4 for bfloat16 and 16 for float16 (evalsuite.precision). Below the magnitude
  of a trained model's logits (16) the spacing at 16 is taken: a log-probability is a difference of
  logits, whose rounding reaches it however small it is. Since ε is large next to a log-likelihood, mc2
  is bounded by its exact extremes instead of the relative bound: each true choice's ll moved up by its
  ε and each false one's down (and the reverse), with v1's labels; the score by the mean of those
  bounds; its card value may move within them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from evalsuite.choices import characters, near_tie
from evalsuite.errors import ConfigError
from evalsuite.fidelity import DEFAULT_EPSILON
from evalsuite.pipeline.evaluate import aggregate, dataset_order
from evalsuite.precision import LOGIT_MAGNITUDE, Precision, reduced_precision
from evalsuite.results import DocRecord, RequestRecord

if TYPE_CHECKING:
    from evalsuite.benchmarks.spec import BenchmarkSpec

# mc2 is a smooth function of the lls: bounded relatively, not compared for identity.
RELATIVE_METRICS = frozenset({"mc2"})
# How each 0/1 metric picks its choice: (group of requests, whether scores are per character).
# v1's acc_norm divides a choice's ll by the choice's length in characters: the continuation without
# the one space v1 put before each choice.
CHOICE_METRICS: Mapping[str, tuple[str, bool]] = {
    "acc": ("main", False),
    "acc_norm": ("main", True),
    "mc1": ("mc1", False),
}
# A score and the mean of its documents, both in float64, differ only by summation order.
_SUMMATION_SLACK = 1e-12

DocKey = tuple[str | None, int]


def doc_label(doc: DocKey | None) -> str:
    """How a document (or, for None, the benchmark's score) is named in verdicts: `doc 3 (anatomy)`."""
    if doc is None:
        return "score"
    subject, doc_id = doc
    return f"doc {doc_id}" + (f" ({subject})" if subject else "")


class Verdict(StrEnum):
    EXACT = "exact"
    WITHIN = "within tolerance"
    DIFFERS = "differs"


@dataclass(frozen=True)
class Tolerance:
    epsilon: float = DEFAULT_EPSILON  # per log-likelihood, in nats (float32, or --tol)
    precision: Precision | None = None  # reduced precision: ε in spacings of this format instead

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon >= 0):
            raise ConfigError(f"--tol {self.epsilon}: must be a finite number >= 0, e.g. 1e-4")

    @classmethod
    def for_dtypes(cls, *dtypes: str | None) -> Tolerance:
        """The policy for runs computed in these dtypes: the coarsest reduced precision among them, else
        float32's (an unknown dtype counts as float32, as v1's default)."""
        reduced = [p for p in map(reduced_precision, dtypes) if p is not None]
        return cls(precision=min(reduced, key=lambda p: p.significant_bits)) if reduced else cls()

    def at(self, *values: float) -> float:
        """ε for log-likelihoods of these values (the largest magnitude decides)."""
        if self.precision is None:
            return self.epsilon
        return self.precision.epsilon(max((abs(v) for v in values), default=0.0))

    @property
    def near_tie_margin(self) -> float:
        return 2 * self.epsilon

    @property
    def relative(self) -> float:
        """The relative bound on mc2 and its score: e^(2ε) - 1."""
        return math.expm1(2 * self.epsilon)

    def describe(self) -> str:
        if self.precision is None:
            return f"ε = {self.epsilon:g}, near-tie margin {self.near_tie_margin:g}, mc2 relative {self.relative:.3g}"
        name = self.precision.name
        below = 2 * LOGIT_MAGNITUDE  # the spacing at LOGIT_MAGNITUDE holds up to twice it
        return (
            f"{name}: ε = {self.precision.spacings} {name} spacings at the value ({self.at(0.0):g} below "
            f"|ll| {below:g}, {self.at(100.0):g} at 100), near-ties where ε can swap choices, mc2 within its "
            "bounds under ε"
        )


DEFAULT_TOLERANCE = Tolerance()


@dataclass(frozen=True)
class NearTie:
    """A 0/1 metric that flipped where the reference could not tell its top two choices apart."""

    doc: DocKey
    metric: str
    margin: float  # the reference's best minus second-best score
    reference: float
    run: float


@dataclass(frozen=True)
class Difference:
    doc: DocKey | None  # None: the benchmark's score
    what: str


@dataclass(frozen=True)
class BenchmarkVerdict:
    benchmark: str
    n_docs: int
    n_loglikelihoods: int
    max_abs_dll: float
    n_ll_changed: int  # log-likelihoods not bit-identical
    near_ties: tuple[NearTie, ...] = ()
    differences: tuple[Difference, ...] = ()
    score_run: float | None = None
    score_reference: float | None = None

    @property
    def verdict(self) -> Verdict:
        if self.differences:
            return Verdict.DIFFERS
        if self.n_ll_changed or self.near_ties or self.score_run != self.score_reference:
            return Verdict.WITHIN
        return Verdict.EXACT

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "verdict": self.verdict.value,
            "n_docs": self.n_docs,
            "n_loglikelihoods": self.n_loglikelihoods,
            "n_loglikelihoods_changed": self.n_ll_changed,
            "max_abs_dll": self.max_abs_dll,
            "score_run": self.score_run,
            "score_reference": self.score_reference,
            "near_ties": [
                {"doc": list(t.doc), "metric": t.metric, "margin": t.margin, "reference": t.reference, "run": t.run}
                for t in self.near_ties
            ],
            "differences": [{"doc": None if d.doc is None else list(d.doc), "what": d.what} for d in self.differences],
        }


def requests_in_v1_order(doc: DocRecord) -> list[RequestRecord]:
    """v1's request order: TruthfulQA's mc1 choices (recorded apart) first, then the others."""
    return [RequestRecord(**r) for r in doc.extra.get("mc1_requests", [])] + list(doc.requests)


def choice_scores(doc: DocRecord, metric: str, tol: Tolerance | None = None) -> list[float] | None:
    """The per-choice scores a 0/1 metric takes the argmax of; None for a metric not decided by lls.
    With `tol`: how far each score may move instead (ε of its ll, per character where the score is)."""
    if metric not in CHOICE_METRICS:
        return None
    group, per_char = CHOICE_METRICS[metric]
    requests = [RequestRecord(**r) for r in doc.extra.get("mc1_requests", [])] if group == "mc1" else doc.requests
    if not requests or any(r.loglikelihood is None or r.continuation is None for r in requests):
        return None
    lls = [float(r.loglikelihood or 0.0) for r in requests]
    values = lls if tol is None else [tol.at(ll) for ll in lls]
    return [v / characters(r.continuation or "") if per_char else v for v, r in zip(values, requests, strict=True)]


def mc2_interval(doc: DocRecord, tol: Tolerance) -> tuple[float, float] | None:
    """The lowest and highest mc2 of the document with each ll moved by at most its ε: v1's mc2 (every
    choice from the first 0 label on counts as false) with the true choices' lls moved down and the false
    ones' up, then the reverse. None without labels or lls."""
    labels = doc.extra.get("mc2_labels")
    lls = [r.loglikelihood for r in doc.requests if r.loglikelihood is not None and math.isfinite(r.loglikelihood)]
    if not labels or 0 not in labels or not len(labels) == len(lls) == len(doc.requests):
        return None
    split = list(labels).index(0)
    sign = [1.0 if i < split else -1.0 for i in range(len(lls))]  # true choices up, false ones down
    low = [ll - s * tol.at(ll) for ll, s in zip(lls, sign, strict=True)]
    high = [ll + s * tol.at(ll) for ll, s in zip(lls, sign, strict=True)]
    return _mc2(low, split), _mc2(high, split)


def _mc2(lls: Sequence[float], split: int) -> float:
    top = max(lls)  # shifted: the probabilities of a tiny model's choices underflow e^ll
    p = [math.exp(ll - top) for ll in lls]
    return sum(p[:split]) / sum(p)


def margin(scores: Sequence[float]) -> float:
    """Best minus second-best score (infinite with a single choice: nothing to tie with)."""
    if len(scores) < 2:
        return math.inf
    top = sorted(scores, reverse=True)
    return top[0] - top[1]


def _compare_requests(
    key: DocKey, ref: DocRecord, run: DocRecord, tol: Tolerance
) -> tuple[list[float], list[Difference]]:
    """Absolute ll differences, and the differences that fail: text not byte-identical, |Δll| > ε."""
    ref_reqs, run_reqs = requests_in_v1_order(ref), requests_in_v1_order(run)
    if len(ref_reqs) != len(run_reqs):
        return [], [Difference(key, f"{len(run_reqs)} requests, the reference has {len(ref_reqs)}")]
    dlls: list[float] = []
    diffs: list[Difference] = []
    for i, (want, got) in enumerate(zip(ref_reqs, run_reqs, strict=True)):
        for name in ("context", "continuation", "generation"):
            if getattr(want, name) != getattr(got, name):
                diffs.append(Difference(key, f"request {i}: {name} differs: {_excerpt(getattr(got, name))} "
                                             f"vs reference {_excerpt(getattr(want, name))}"))  # fmt: skip
        if want.loglikelihood is None or got.loglikelihood is None:
            if want.loglikelihood != got.loglikelihood:
                diffs.append(Difference(key, f"request {i}: a log-likelihood on one side only"))
            continue
        d = 0.0 if got.loglikelihood == want.loglikelihood else abs(got.loglikelihood - want.loglikelihood)
        dlls.append(d)
        eps = tol.at(got.loglikelihood, want.loglikelihood) if math.isfinite(d) else tol.epsilon
        if not d <= eps:  # also catches NaN
            diffs.append(Difference(key, f"request {i}: |Δll| = {d:.3g} > ε = {eps:.3g}"))
    return dlls, diffs


def doc_epsilon(tol: Tolerance, *docs: DocRecord) -> float:
    """ε for a document's metrics: at the largest log-likelihood of the documents."""
    lls = [r.loglikelihood for d in docs for r in requests_in_v1_order(d) if r.loglikelihood is not None]
    return tol.at(*(x for x in lls if math.isfinite(x)))


def _compare_metrics(
    key: DocKey, ref: DocRecord, run: DocRecord, tol: Tolerance, eps: float
) -> tuple[list[NearTie], list[Difference]]:
    """`eps`: the document's ε (doc_epsilon)."""
    ties: list[NearTie] = []
    diffs: list[Difference] = []
    for metric in sorted(set(ref.metrics) | set(run.metrics)):
        if metric not in ref.metrics or metric not in run.metrics:
            diffs.append(Difference(key, f"{metric}: present on one side only"))
            continue
        want, got = ref.metrics[metric], run.metrics[metric]
        interval = mc2_interval(ref, tol) if metric == "mc2" and tol.precision is not None else None
        if interval is not None:
            if not interval[0] - _SUMMATION_SLACK <= got <= interval[1] + _SUMMATION_SLACK:
                diffs.append(Difference(key, f"{metric} {got!r} vs reference {want!r}: outside [{interval[0]:.4g}, "
                                             f"{interval[1]:.4g}], its bounds under ε"))  # fmt: skip
            continue
        if metric in RELATIVE_METRICS:
            relative = math.expm1(2 * eps)
            if not _within(got, want, relative):
                diffs.append(Difference(key, f"{metric} {got!r} vs reference {want!r}: beyond relative {relative:.3g}"))
            continue
        if got == want:
            continue
        scores, bounds = choice_scores(ref, metric), choice_scores(ref, metric, tol)
        gap = margin(scores) if scores is not None else math.inf
        if scores is not None and bounds is not None and near_tie(scores, bounds):
            ties.append(NearTie(key, metric, gap, want, got))
        else:
            why = f" (reference margin {gap:.3g}, beyond what ε moves)" if scores is not None else ""
            diffs.append(Difference(key, f"{metric} {got:g} vs reference {want:g}{why}"))
    return ties, diffs


def within_relative(got: float, want: float, tol: Tolerance) -> bool:
    """A continuous value (mc2, its score) within the policy's relative bound of the reference's."""
    return _within(got, want, tol.relative)


def _within(got: float, want: float, relative: float) -> bool:
    return abs(got - want) <= relative * abs(want) + _SUMMATION_SLACK


def same_card_value(a: float, b: float) -> bool:
    """The same two-decimal value on a model card."""
    return f"{100 * a:.2f}" == f"{100 * b:.2f}"


def _excerpt(text: str | None, width: int = 40) -> str:
    if text is None:
        return "none"
    return repr(text if len(text) <= width else text[:width] + "…")


def _score(spec: BenchmarkSpec, docs: Sequence[DocRecord]) -> float:
    # The pipeline's aggregate (evalsuite.scoring's rules): the score means what a run's score means.
    return aggregate(spec, dataset_order(spec, docs)).value  # both sides summed in one order


def _compare_scores(
    spec: BenchmarkSpec,
    ref_docs: Sequence[DocRecord],
    run_docs: Sequence[DocRecord],
    ties: Sequence[NearTie],
    stated: tuple[float | None, float | None],
    tol: Tolerance,
    eps: float,
) -> tuple[float, float, list[Difference]]:
    """Both scores recomputed from their documents, the reference's flipped near-ties taking the run's
    values; each stated score must be the mean of its documents."""
    diffs: list[Difference] = []
    flipped: dict[DocKey, dict[str, float]] = {}
    for t in ties:
        flipped.setdefault(t.doc, {})[t.metric] = t.run
    adjusted = [replace(d, metrics={**d.metrics, **flipped.get(d.key, {})}) for d in ref_docs]
    run_score, ref_score = _score(spec, run_docs), _score(spec, adjusted)
    for side, value, docs in (("run", stated[0], run_docs), ("reference", stated[1], ref_docs)):
        if value is None:
            continue
        recomputed = run_score if side == "run" else _score(spec, docs)
        if value is not None and not abs(value - recomputed) <= _SUMMATION_SLACK:
            diffs.append(Difference(None, f"the {side}'s stated score {value!r} is not the mean of its documents "
                                          f"({recomputed!r})"))  # fmt: skip
    relative = math.expm1(2 * eps)
    intervals = [mc2_interval(d, tol) for d in ref_docs] if spec.metric == "mc2" and tol.precision else []
    if intervals and all(intervals):
        low = sum(i[0] for i in intervals if i) / len(intervals)
        high = sum(i[1] for i in intervals if i) / len(intervals)
        if not low - _SUMMATION_SLACK <= run_score <= high + _SUMMATION_SLACK:
            diffs.append(Difference(None, f"score {run_score!r} vs reference {ref_score!r}: outside [{low:.4g}, "
                                          f"{high:.4g}], the mean of its documents' bounds"))  # fmt: skip
    elif spec.metric in RELATIVE_METRICS:
        if not _within(run_score, ref_score, relative):
            diffs.append(
                Difference(None, f"score {run_score!r} vs reference {ref_score!r}: beyond relative {relative:.3g}")
            )
    elif run_score != ref_score:
        diffs.append(Difference(None, f"score {run_score!r} vs reference {ref_score!r}"))
    # In reduced precision mc2 may move within its bounds, and its card value with it.
    card_may_move = tol.precision is not None and spec.metric in RELATIVE_METRICS
    if not same_card_value(run_score, ref_score) and not card_may_move:
        diffs.append(Difference(None, f"card value {100 * run_score:.2f} vs reference {100 * ref_score:.2f}"))
    return run_score, ref_score, diffs


def compare_benchmark(
    spec: BenchmarkSpec,
    reference: Sequence[DocRecord],
    run: Sequence[DocRecord],
    tol: Tolerance = DEFAULT_TOLERANCE,
    *,
    stated_scores: tuple[float | None, float | None] = (None, None),
) -> BenchmarkVerdict:
    """Apply the policy to one benchmark; `stated_scores` are (run, reference) as their files state them."""
    ref_by_key = {d.key: d for d in reference}
    run_by_key = {d.key: d for d in run}
    diffs: list[Difference] = []
    missing = [k for k in ref_by_key if k not in run_by_key]
    extra = [k for k in run_by_key if k not in ref_by_key]
    if missing:
        diffs.append(
            Difference(
                None,
                f"{len(missing)} reference documents are not in the run, e.g. {doc_label(missing[0])} "
                "(to check a --limit run on the documents it has, add --subset)",
            )
        )
    if extra:
        example = doc_label(extra[0])
        diffs.append(Difference(None, f"{len(extra)} run documents are not in the reference, e.g. {example}"))
    dlls: list[float] = []
    ties: list[NearTie] = []
    eps = 0.0  # the largest document ε: the score's bound
    for key, ref in ref_by_key.items():
        if key not in run_by_key:
            continue
        doc_eps = doc_epsilon(tol, ref, run_by_key[key])
        eps = max(eps, doc_eps)
        d, req_diffs = _compare_requests(key, ref, run_by_key[key], tol)
        t, metric_diffs = _compare_metrics(key, ref, run_by_key[key], tol, doc_eps)
        dlls += d
        ties += t
        diffs += req_diffs + metric_diffs
    run_score = ref_score = None
    if not missing and not extra and reference:
        run_score, ref_score, score_diffs = _compare_scores(spec, reference, run, ties, stated_scores, tol, eps)
        diffs += score_diffs
    return BenchmarkVerdict(
        benchmark=spec.name,
        n_docs=len(run_by_key),
        n_loglikelihoods=len(dlls),
        max_abs_dll=max(dlls, default=0.0),
        n_ll_changed=sum(1 for x in dlls if x != 0.0),
        near_ties=tuple(ties),
        differences=tuple(diffs),
        score_run=run_score,
        score_reference=ref_score,
    )
