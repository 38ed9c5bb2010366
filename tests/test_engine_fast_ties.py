"""Which choices the fast backend sends back to the exact path in reduced precision (evalsuite.engine.fast.ties)."""

from __future__ import annotations

from evalsuite.engine.fast.ties import choice_groups, could_swap
from evalsuite.precision import PRECISIONS

BF16 = PRECISIONS["bfloat16"]


def test_a_documents_choices_share_their_context_or_their_continuation() -> None:
    pairs = [
        ("Q1", " a"), ("Q1", " b"), ("Q1", " c"),  # a question and its answers
        ("The cat", " sat."), ("The dog", " sat."),  # Winogrande: two fillings, one continuation
        ("Q2", " a"),  # the next document
    ]  # fmt: skip
    assert choice_groups(pairs) == [[0, 1, 2], [3, 4], [5]]


def test_choices_closer_than_the_rounding_could_swap() -> None:
    # bfloat16 at 8 <= |ll| < 16: numbers 2^(3-7) = 1/16 apart; each ll may move by 4 of them, 0.25.
    assert BF16.epsilon(-10.0) == 4 / 16
    assert could_swap([-10.0, -10.4], [" ab", " ab"], BF16)  # margin 0.4 < 0.25 + 0.25
    assert not could_swap([-10.0, -10.6], [" ab", " ab"], BF16)  # 0.6 > 0.5
    # Per character (v1's acc_norm, the leading space not counted): -10/2 = -5 vs -10.6/4 = -2.65, a
    # margin of 2.35 against 0.25/4 + 0.25/2 = 0.1875; by ll 0.6 against 0.5: no swap either way.
    assert not could_swap([-10.0, -10.6], [" ab", " abcd"], BF16)
    # Per character only: -10/2 = -5 vs -20.1/4 = -5.025, a margin of 0.025 < 0.25/2 + 0.5/4 = 0.25.
    assert could_swap([-10.0, -20.1], [" ab", " abcd"], BF16)
    assert not could_swap([-10.0], [" ab"], BF16)  # a single choice has nothing to swap with
