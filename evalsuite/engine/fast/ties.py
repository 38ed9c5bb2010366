"""The choices a cached prefix could reorder: in reduced precision, a document whose choices lie closer
than the rounding moves them is answered on the exact path.

In bfloat16 and float16 the rounding of a prefix reused from the cache moves a log-likelihood by a
spacing or two of the format, enough to swap two choices that v1 (one long pass per request) told
apart by less. A document's choices are the requests of a call that follow one another sharing their
context (a question and its answers) or their continuation (Winogrande's two fillings of one sentence).
v1's multiple-choice metrics take the argmax of their log-likelihoods, or of the log-likelihoods per
character of the choice (`acc_norm`); where either could change within the format's rounding, the best
choice and its close rivals are answered again by the exact path, so the document's outcome is v1's (the
other choices are far below and keep the fast backend's answers). Float32 rounding (~1e-6) is far
below any real margin: nothing is checked there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalsuite.choices import characters, contenders
from evalsuite.precision import Precision


def choice_groups(pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
    """Runs of consecutive (context, continuation) requests sharing their context or continuation with
    the one before (a run may hold two documents where they share one: that only checks more)."""
    groups: list[list[int]] = []
    for i, (context, continuation) in enumerate(pairs):
        if groups and (context == pairs[i - 1][0] or continuation == pairs[i - 1][1]):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def could_swap(lls: Sequence[float], continuations: Sequence[str], precision: Precision) -> list[int]:
    """The choices whose order the rounding of a cached prefix (at most `precision.noise` of each value)
    could change or tie with the best, by log-likelihood or by log-likelihood per character: the best
    and its close rivals; empty when no order could change."""
    moves = [precision.noise(ll) for ll in lls]
    involved: set[int] = set()
    for divisor in ([1] * len(lls), [characters(c) for c in continuations]):
        scores = [ll / n for ll, n in zip(lls, divisor, strict=True)]
        involved |= set(contenders(scores, [m / n for m, n in zip(moves, divisor, strict=True)]))
    return sorted(involved)


class Settler:
    """Hands each answer of a log-likelihood call to lm-eval's cache hook (and so to `--resume`) once it
    is final: at once in float32; in reduced precision when its group is answered and no choice could
    swap, or else by the exact path, which answers the group again and reports it itself."""

    def __init__(
        self,
        requests: Sequence[Any],
        answers: list[tuple[float, bool]],
        fast: set[int],
        precision: Precision | None,
        hook: Any,
    ) -> None:
        self.requests, self.answers, self.fast, self.precision, self.hook = requests, answers, fast, precision, hook
        if precision is None:  # float32: each answer is final as it comes
            self.groups = [[i] for i in range(len(requests))]
        else:
            self.groups = choice_groups([(str(r.args[0]), str(r.args[1])) for r in requests])
        self.group_of = {i: g for g, members in enumerate(self.groups) for i in members}
        self.waiting = [sum(1 for i in members if i in fast) for members in self.groups]
        self.again: list[int] = []

    def answered(self, i: int) -> None:
        """Request i (answered by the fast backend) is in `answers`."""
        g = self.group_of[i]
        self.waiting[g] -= 1
        if self.waiting[g] == 0 and all(j in self.fast for j in self.groups[g]):
            self._settle(g)

    def close_calls(self) -> list[int]:
        """Once the exact path answered the requests the fast backend could not: settle the groups that
        hold some; returns the requests to answer again on the exact path."""
        for g, members in enumerate(self.groups):
            if any(j not in self.fast for j in members) and any(j in self.fast for j in members):
                self._settle(g)
        again, self.again = sorted(self.again), []
        return again

    def _settle(self, g: int) -> None:
        members = self.groups[g]
        again: set[int] = set()
        if self.precision is not None:
            lls = [self.answers[j][0] for j in members]
            close = could_swap(lls, [str(self.requests[j].args[1]) for j in members], self.precision)
            again = {members[k] for k in close if members[k] in self.fast}  # the others keep their answers
        self.again += sorted(again)
        for j in members:
            if j in self.fast and j not in again:  # the exact path reports the others
                self.hook.add_partial("loglikelihood", self.requests[j].args, self.answers[j])
