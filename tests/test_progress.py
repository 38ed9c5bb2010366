"""The progress bar moves as the backend reports answers, within one call, through the resume wrapper too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import GOLDEN, as_backend, resolved
from evalsuite.benchmarks.contract import Request

REQUESTS = [
    Request(f"{subject} is the topic of question {i}. Which word fits best here? Answer:", choice)
    for i, subject in enumerate(("Rain", "Cheese", "Orbit", "Granite", "Violin", "Harbour"))
    for choice in (" yes", " no", " perhaps not today")
]


class Bar:
    """tqdm's `update`, remembering each move and how many forward passes had run by then."""

    def __init__(self, passes: list[int]) -> None:
        self.passes = passes
        self.moves: list[tuple[int, int]] = []

    def update(self, n: int = 1) -> None:
        self.moves.append((n, len(self.passes)))


@pytest.fixture(scope="module")
def fast_lm() -> Any:
    from evalsuite.engine.fast import load

    options, files = resolved(
        model=str(GOLDEN / "models" / "tiny-moe"), device="cpu", dtype="float32", max_batch_tokens=256
    )
    return load(options, files).lm


@pytest.mark.parametrize("wrapped", [False, True])
def test_the_bar_moves_with_each_answer_within_a_call(fast_lm: Any, wrapped: bool, tmp_path: Path) -> None:
    from evalsuite.engine.fast import FAST_CALLS
    from evalsuite.pipeline.evaluate import answer
    from evalsuite.resume.lm import ResumableBackend
    from evalsuite.resume.store import AnswerStore

    backend = as_backend(fast_lm, FAST_CALLS)
    if wrapped:
        backend = ResumableBackend(backend, AnswerStore(tmp_path / "answers.jsonl", "digest"))
    passes: list[int] = []
    handle = fast_lm.model.register_forward_pre_hook(lambda *_: passes.append(1))
    bar = Bar(passes)
    try:
        responses = answer(backend, REQUESTS, bar)
    finally:
        handle.remove()
    assert len(REQUESTS) <= FAST_CALLS.per_call["loglikelihood"]  # one call
    assert all(isinstance(r, float) for r in responses)
    assert sum(n for n, _ in bar.moves) == len(REQUESTS)
    assert bar.moves[0][1] < len(passes)  # the bar moved before the call's last pass ran
    assert fast_lm.cache_hook.__class__.__name__ != "Ticker"  # the hook it replaced is back
