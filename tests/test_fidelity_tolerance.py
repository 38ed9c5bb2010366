"""The tolerance policy on hand-written documents: each rule, its edge, and what it lets through."""

from __future__ import annotations

import math

import pytest

from evalsuite.benchmarks.table import BY_NAME
from evalsuite.errors import ConfigError
from evalsuite.fidelity.tolerance import Tolerance, Verdict, compare_benchmark
from evalsuite.results import DocRecord, RequestRecord

EPS = 1e-4
ARC = BY_NAME["arc"]
TRUTHFULQA = BY_NAME["truthfulqa"]
GSM8K = BY_NAME["gsm8k"]


def choice_doc(
    lls: list[float], metrics: dict[str, float], conts: tuple[str, ...] = (" a", " b"), ctx: str = "Q?"
) -> DocRecord:
    requests = tuple(RequestRecord(ctx, c, ll) for c, ll in zip(conts, lls, strict=True))
    return DocRecord(doc_id=0, requests=requests, metrics=metrics)


def test_identical_documents_are_exact() -> None:
    doc = choice_doc([-1.0, -2.0], {"acc": 1.0, "acc_norm": 1.0})
    verdict = compare_benchmark(ARC, [doc], [doc])
    assert verdict.verdict is Verdict.EXACT
    assert verdict.max_abs_dll == 0.0


def test_lls_within_epsilon_are_within_tolerance() -> None:
    ref = choice_doc([-1.0, -2.0], {"acc": 1.0, "acc_norm": 1.0})
    run = choice_doc([-1.0 + 0.9 * EPS, -2.0 - 0.9 * EPS], {"acc": 1.0, "acc_norm": 1.0})
    verdict = compare_benchmark(ARC, [ref], [run])
    assert verdict.verdict is Verdict.WITHIN
    assert verdict.max_abs_dll == pytest.approx(0.9 * EPS)
    assert verdict.n_ll_changed == 2


def test_an_ll_beyond_epsilon_differs() -> None:
    ref = choice_doc([-1.0, -2.0], {"acc": 1.0, "acc_norm": 1.0})
    run = choice_doc([-1.0 + 1.5 * EPS, -2.0], {"acc": 1.0, "acc_norm": 1.0})
    verdict = compare_benchmark(ARC, [ref], [run])
    assert verdict.verdict is Verdict.DIFFERS
    assert "|Δll|" in verdict.differences[0].what


def test_a_flip_at_a_near_tie_is_reported_not_failed() -> None:
    # Reference margin 1.5e-4 < 2ε: both lls move by ε or less and swap places.
    ref = choice_doc([-1.0, -1.00015], {"acc": 1.0, "acc_norm": 1.0})
    run = choice_doc([-1.0 - EPS, -1.00015 + 0.9 * EPS], {"acc": 0.0, "acc_norm": 0.0})
    verdict = compare_benchmark(ARC, [ref], [run])
    assert verdict.verdict is Verdict.WITHIN
    assert {t.metric for t in verdict.near_ties} == {"acc", "acc_norm"}
    acc = next(t for t in verdict.near_ties if t.metric == "acc")
    assert acc.margin == pytest.approx(1.00015 - 1.0)
    # The score: the reference's near-tie takes the run's value, so both are 0/1 = 0.
    assert verdict.score_run == verdict.score_reference == 0.0


def test_a_flip_outside_a_near_tie_differs() -> None:
    ref = choice_doc([-1.0, -1.0003], {"acc": 1.0, "acc_norm": 1.0})  # margin 3e-4 >= 2ε
    run = choice_doc([-1.0, -1.0003], {"acc": 0.0, "acc_norm": 1.0})
    verdict = compare_benchmark(ARC, [ref], [run])
    assert verdict.verdict is Verdict.DIFFERS
    assert any("acc 0 vs reference 1" in d.what for d in verdict.differences)


def test_acc_norm_near_ties_are_judged_per_character() -> None:
    # Raw margin 2.0002 (no tie for acc); per character of the choice (the continuation without v1's
    # leading space) -2/4 = -0.5 vs -4.0002/8 = -0.500025: closer than ε/4 + ε/8 = 3.75e-5, a tie.
    conts = (" abcd", " abcdefgh")
    ref = choice_doc([-2.0, -4.0002], {"acc": 1.0, "acc_norm": 1.0}, conts)
    run = choice_doc([-2.0, -4.0002], {"acc": 1.0, "acc_norm": 0.0}, conts)
    verdict = compare_benchmark(ARC, [ref], [run])
    assert [(t.metric, t.margin) for t in verdict.near_ties] == [("acc_norm", pytest.approx(-0.5 + 4.0002 / 8))]
    assert verdict.verdict is Verdict.WITHIN
    flipped_acc = choice_doc([-2.0, -4.0002], {"acc": 0.0, "acc_norm": 1.0}, conts)
    assert compare_benchmark(ARC, [ref], [flipped_acc]).verdict is Verdict.DIFFERS
    # Per character, ε moves a score by ε / its length: a per-character margin of 4e-5 is no tie.
    far = choice_doc([-2.0, -4.00032], {"acc": 1.0, "acc_norm": 1.0}, conts)
    far_run = choice_doc([-2.0, -4.00032], {"acc": 1.0, "acc_norm": 0.0}, conts)
    assert compare_benchmark(ARC, [far], [far_run]).verdict is Verdict.DIFFERS


def test_one_changed_context_byte_differs() -> None:
    ref = choice_doc([-1.0, -2.0], {"acc": 1.0, "acc_norm": 1.0}, ctx="Q?")
    run = choice_doc([-1.0, -2.0], {"acc": 1.0, "acc_norm": 1.0}, ctx="Q!")
    verdict = compare_benchmark(ARC, [ref], [run])
    assert verdict.verdict is Verdict.DIFFERS
    assert "context differs" in verdict.differences[0].what


def test_a_changed_generation_differs_even_with_equal_accuracy() -> None:
    ref = DocRecord(0, (RequestRecord("Q: 1+1?", generation=" 2"),), {"acc": 1.0})
    run = DocRecord(0, (RequestRecord("Q: 1+1?", generation=" 2."),), {"acc": 1.0})
    assert compare_benchmark(GSM8K, [ref], [ref]).verdict is Verdict.EXACT
    assert compare_benchmark(GSM8K, [ref], [run]).verdict is Verdict.DIFFERS


def _mc2(true_lls: list[float], false_lls: list[float]) -> float:
    t = sum(math.exp(x) for x in true_lls)
    f = sum(math.exp(x) for x in false_lls)
    return t / (t + f)


def test_the_mc2_bound_is_the_worst_case_of_lls_within_epsilon() -> None:
    bound = math.exp(2 * EPS) - 1
    assert Tolerance(EPS).relative == pytest.approx(bound, rel=1e-12)
    # Worst case: every true ll down by ε, every false ll up by ε. Both sums move by e^∓ε, so
    # mc2 = T / (T + F) moves by less than their ratio e^(2ε).
    true_lls, false_lls = [-1.0, -2.5], [-0.5, -3.0, -4.0]
    before = _mc2(true_lls, false_lls)
    after = _mc2([x - EPS for x in true_lls], [x + EPS for x in false_lls])
    assert 0 < (before - after) / before <= bound


def _truthfulqa_doc(mc2: float) -> DocRecord:
    mc1 = [{"context": "Q", "continuation": " yes", "loglikelihood": -1.0}]
    return DocRecord(0, (RequestRecord("Q", " yes", -1.0),), {"mc1": 1.0, "mc2": mc2}, extra={"mc1_requests": mc1})


def test_mc2_within_the_relative_bound_passes_beyond_it_differs() -> None:
    bound = math.exp(2 * EPS) - 1
    ref = _truthfulqa_doc(0.123)  # card 12.30, and still 12.30 within the bound
    assert compare_benchmark(TRUTHFULQA, [ref], [_truthfulqa_doc(0.123 * (1 + 0.99 * bound))]).verdict is Verdict.WITHIN
    assert (
        compare_benchmark(TRUTHFULQA, [ref], [_truthfulqa_doc(0.123 * (1 + 1.01 * bound))]).verdict is Verdict.DIFFERS
    )


def test_the_card_value_must_not_change_at_two_decimals() -> None:
    # 0.5 * (1 + bound) is within the mc2 bound, but the card rounds 50.00 to 50.01.
    bound = math.exp(2 * EPS) - 1
    verdict = compare_benchmark(TRUTHFULQA, [_truthfulqa_doc(0.5)], [_truthfulqa_doc(0.5 * (1 + 0.99 * bound))])
    assert [d.what for d in verdict.differences] == ["card value 50.01 vs reference 50.00"]


def test_a_stated_score_that_is_not_the_mean_of_its_documents_differs() -> None:
    docs = [DocRecord(i, (RequestRecord("Q", generation=" 2"),), {"acc": float(i % 2)}) for i in range(4)]
    ok = compare_benchmark(GSM8K, docs, docs, stated_scores=((0 + 1 + 0 + 1) / 4, (0 + 1 + 0 + 1) / 4))
    assert ok.verdict is Verdict.EXACT
    wrong = compare_benchmark(GSM8K, docs, docs, stated_scores=(3 / 4, (0 + 1 + 0 + 1) / 4))
    assert wrong.verdict is Verdict.DIFFERS


def test_missing_documents_differ() -> None:
    doc = choice_doc([-1.0, -2.0], {"acc": 1.0, "acc_norm": 1.0})
    assert compare_benchmark(ARC, [doc], []).verdict is Verdict.DIFFERS


def test_a_negative_tolerance_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--tol"):
        Tolerance(-1e-4)
