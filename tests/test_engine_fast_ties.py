"""Which choices the fast backend sends back to the exact path in reduced precision (evalsuite.engine.fast.ties)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import GOLDEN, load_backend_of
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
    # bfloat16 between 8 and 16: numbers 2^(3-7) = 1/16 apart; the measured noise is 2 of them at the value.
    assert BF16.noise(-10.0) == 2 / 16
    assert BF16.noise(-20.1) == 2 / 8  # between 16 and 32: 1/8 apart
    assert could_swap([-10.0, -10.2], [" ab", " ab"], BF16)  # margin 0.2 <= 0.125 + 0.125
    assert could_swap([-10.0, -10.25], [" ab", " ab"], BF16)  # exactly the bound: the two could tie
    assert not could_swap([-10.0, -10.3], [" ab", " ab"], BF16)  # 0.3 > 0.25
    # Per character (v1's acc_norm, the leading space not counted): -10/2 = -5 vs -10.3/4 = -2.575, a
    # margin of 2.425 against 0.125/2 + 0.125/4; by ll 0.3 against 0.25: no swap either way.
    assert not could_swap([-10.0, -10.3], [" ab", " abcd"], BF16)
    # Per character only: -10/2 = -5 vs -20.1/4 = -5.025, a margin of 0.025 < 0.125/2 + 0.25/4.
    assert could_swap([-10.0, -20.1], [" ab", " abcd"], BF16)
    assert not could_swap([-10.0], [" ab"], BF16)  # a single choice has nothing to swap with
    # Only the best and its close rivals go back to the exact path: a choice 3 nats below stays.
    assert could_swap([-10.2, -10.0, -13.0], [" ab", " ab", " ab"], BF16) == [0, 1]


@pytest.fixture(scope="module")
def bf16() -> tuple[Any, list[Any], list[list[int]]]:
    """The fast backend on the reference MoE in bfloat16, HellaSwag's requests and each document's."""
    from lm_eval.api.instance import Instance

    from evalsuite.benchmarks.table import BY_NAME
    from evalsuite.data.sources import source_for
    from evalsuite.pipeline.evaluate import prepare

    model = str(GOLDEN / "models" / "tiny-moe")
    backend = load_backend_of(model=model, dtype="bfloat16", device="cpu", max_batch_tokens=4096)
    instances, docs = [], []
    for item in prepare(BY_NAME["hellaswag"], source_for(GOLDEN / "data")):
        docs.append(list(range(len(instances), len(instances) + len(item.requests))))
        instances += [Instance("loglikelihood", {}, r.arguments, 0) for r in item.requests]
    return backend.lm, instances, docs


class Hook:
    """lm-eval's CacheHook interface, keeping every answer the backend hands it."""

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[Any, ...], Any]] = []

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        self.seen.append((tuple(req), res))


@pytest.mark.slow
def test_in_bfloat16_every_documents_choice_is_the_exact_paths(bf16: tuple[Any, list[Any], list[list[int]]]) -> None:
    fast, instances, docs = bf16
    hook = Hook()
    fast.set_cache_hook(hook)
    ours = [ll for ll, _ in fast.loglikelihood(instances)]
    exact = [ll for ll, _ in fast.exact.loglikelihood(instances)]  # lm-eval's HF class at batch size 1: v1's bits
    for doc in docs:
        chars = [max(1, len(instances[i].args[1]) - 1) for i in doc]  # acc_norm: per character of the choice
        for divisor in ([1] * len(doc), chars):
            mine = [ours[i] / n for i, n in zip(doc, divisor, strict=True)]
            theirs = [exact[i] / n for i, n in zip(doc, divisor, strict=True)]
            assert mine.index(max(mine)) == theirs.index(max(theirs)), doc
    # Each answer reached the hook (and so the resume store) exactly once, with the value returned.
    assert sorted(args for args, _ in hook.seen) == sorted(tuple(i.args) for i in instances)
    returned = {tuple(i.args): ll for i, ll in zip(instances, ours, strict=True)}
    assert all(answer[0] == returned[args] for args, answer in hook.seen)
    # Some documents were close enough to be answered again; most were not.
    assert 0 < fast.reading().exact_requests < len(instances) / 2
