"""How v1's multiple-choice metrics compare a document's choices, and when rounding could reorder them.

v1 takes the argmax of the choices' log-likelihoods (`acc`, `mc1`) or of their log-likelihoods per
character of the choice (`acc_norm`: the continuation without the one space v1 put before it); equal
scores go to the first choice. The tolerance policy and the fast backend's near-tie check both ask
whether scores that may each move by a bound could change that argmax.
"""

from __future__ import annotations

from collections.abc import Sequence


def characters(continuation: str) -> int:
    """v1's acc_norm divisor: the choice's length in characters, its leading space not counted."""
    return max(1, len(continuation.removeprefix(" ")))


def best(scores: Sequence[float]) -> int:
    """v1's choice: the first of equal maxima."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def contenders(scores: Sequence[float], bounds: Sequence[float]) -> list[int]:
    """The best choice and every other that could swap (or tie) with it, each moving by at most its bound;
    empty when none could."""
    if len(scores) < 2:
        return []
    top = best(scores)
    close = [k for k in range(len(scores)) if k != top and scores[top] - scores[k] <= bounds[top] + bounds[k]]
    return sorted([top, *close]) if close else []


def near_tie(scores: Sequence[float], bounds: Sequence[float]) -> bool:
    """Whether the best score and another could swap (or tie) with each moving by at most its bound."""
    return bool(contenders(scores, bounds))
