"""The hf backend (lm-eval's HF class as v1 ran it) publishes the real positions of every forward pass it
makes, so router counts at any batch size are batch size 1's, with nothing of lm-eval or transformers
replaced; and the rows it expects of a log-likelihood batch are checked against what lm-eval feeds."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import GOLDEN, load_model_of
from evalsuite.engine.hflm_positions import LoglikelihoodRows
from evalsuite.moe import recorder as router

TINY_MOE = GOLDEN / "models" / "tiny-moe"
TOP_K = 2  # the reference tiny MoE routes each position to 2 of its 4 experts

SHOTS = "Question: What is two plus two?\nAnswer: four\n\nQuestion: Name a colour.\nAnswer: blue\n\n"
PAIRS = [
    (SHOTS + "Question: What do bees make?\nAnswer:", " honey"),
    (SHOTS + "Question: What do bees make?\nAnswer:", " wax and honey"),
    ("The cat sat on the", " mat"),
    ("The cat sat on the", " hat"),  # a one-token continuation of the same context: one row for both
    ("Once upon a time", " there was a bear who lived in a cave by the river"),
    ("Hi", " there"),
    ("A B C D E F G", " H"),
    ("Story: " + " ".join(f"a{i}" for i in range(40)), " end"),
    ("Question: Where is Paris?\nAnswer:", " France"),
]
PROMPTS = [
    SHOTS + "Question: What do bees make?\nAnswer:",
    "Question: Name a colour.\nAnswer:",
    "Once upon a time",
    "A B C D E F",
    "Tell me about it:",
]
# Stop strings that end some rows of a batch before others (the tiny MoE generates them mid-answer).
UNTIL = ["\n", " a"]
NEVER = "\x00never"
BATCH_SIZES = (1, 4, 8)


@pytest.fixture(scope="module")
def loaded() -> tuple[Any, Any, Any]:
    return load_model_of(model=str(TINY_MOE), device="cpu", dtype="float32")


def _instances(request_type: str, args: list[tuple[Any, ...]]) -> list[Any]:
    from lm_eval.api.instance import Instance

    return [Instance(request_type=request_type, doc={}, arguments=a, idx=0) for a in args]


def _generate_args(until: list[str]) -> list[tuple[str, dict]]:
    return [(p, {"until": list(until), "max_gen_toks": 24, "do_sample": False}) for p in PROMPTS]


def _tokens(recorder: Any, benchmark: str) -> list[list[int]]:
    """Per layer, the positions that picked each expert."""
    frame = recorder.frame()
    rows = frame[frame["benchmark"] == benchmark]
    return [rows[rows["layer"] == layer]["tokens"].tolist() for layer in sorted(set(rows["layer"]))]


def _unpatched(model: Any) -> tuple[Any, list[bool]]:
    """A forward pre-hook that records, at every pass, whether nothing of lm-eval's HF module and helpers,
    of transformers' generation, of the model's class or instance was replaced since the hook was made."""
    import lm_eval.models.huggingface as hf
    import lm_eval.models.utils_hf as utils_hf
    from transformers import GenerationMixin

    watched = (hf, utils_hf, GenerationMixin, type(model))
    before = [dict(vars(owner)) for owner in watched]
    seen: list[bool] = []

    def check(module: Any, args: Any) -> None:
        same = all(
            vars(owner).keys() == snapshot.keys() and all(vars(owner)[k] is v for k, v in snapshot.items())
            for owner, snapshot in zip(watched, before, strict=True)
        )
        seen.append(same and "_get_stopping_criteria" not in vars(model))

    return model.register_forward_pre_hook(check), seen


@pytest.mark.slow
def test_batched_hf_backend_counts_what_batch_size_1_counts_with_nothing_replaced(
    loaded: tuple[Any, Any, Any],
) -> None:
    import lm_eval.models.huggingface as hf
    import lm_eval.models.utils_hf as utils_hf

    from evalsuite.engine.hf import make_lm

    model, tokenizer, info = loaded
    # The premise: the stop strings end some rows' answers early, so batched generation runs steps for
    # rows that have stopped.
    alone = make_lm(model, tokenizer, batch_size=1, max_length=info.max_length)
    cut = alone.generate_until(_instances("generate_until", _generate_args(UNTIL)), disable_tqdm=True)
    whole = alone.generate_until(_instances("generate_until", _generate_args([NEVER])), disable_tqdm=True)
    assert 0 < sum(len(a) < len(b) for a, b in zip(cut, whole, strict=True)) < len(PROMPTS)

    recorder = router.RouterRecorder(model)
    watch, unpatched = _unpatched(model)
    try:
        for bs in BATCH_SIZES:
            lm = make_lm(model, tokenizer, batch_size=bs, max_length=info.max_length)
            with recorder.track(f"loglikelihood {bs}"):
                lm.loglikelihood(_instances("loglikelihood", PAIRS), disable_tqdm=True)
            with recorder.track(f"generation {bs}"):
                assert lm.generate_until(_instances("generate_until", _generate_args(UNTIL)), disable_tqdm=True) == cut
    finally:
        watch.remove()
        recorder.close()
    assert unpatched and all(unpatched), "something of lm-eval or transformers was replaced during a pass"
    assert hf.pad_and_concat is utils_hf.pad_and_concat

    # Batch size 1 feeds no padding and stops each answer where it ends.
    inputs = {tuple(c + x[:-1]) for c, x in (_encoded(tokenizer, *pair) for pair in PAIRS)}
    assert [sum(layer) for layer in _tokens(recorder, "loglikelihood 1")] == [sum(map(len, inputs)) * TOP_K] * 2
    for bs in BATCH_SIZES[1:]:
        assert _tokens(recorder, f"loglikelihood {bs}") == _tokens(recorder, "loglikelihood 1")
        assert _tokens(recorder, f"generation {bs}") == _tokens(recorder, "generation 1")


def _encoded(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's split of a pair into tokens (no special tokens; the context's trailing spaces go to the
    continuation, which none of PAIRS has)."""
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    ctx = tokenizer.encode(context, add_special_tokens=False)
    return ctx, whole[len(ctx) :]


@pytest.mark.slow
def test_a_real_token_equal_to_the_padding_is_counted(loaded: tuple[Any, Any, Any]) -> None:
    # lm-eval pads log-likelihood rows with token 0 and passes no mask; token 0 ending a real input is
    # told apart by the row's length, not by its value.
    from evalsuite.engine.hf import make_lm

    model, tokenizer, info = loaded
    requests = [
        (("", ""), [5, 9, 11, 13, 0, 0], [7]),  # input [5, 9, 11, 13, 0, 0]: the longest row
        (("", ""), [5, 0], [0, 7]),  # input [5, 0, 0], padded to [5, 0, 0, 0, 0, 0]
        (("", ""), [0], [8]),  # input [0]
    ]
    recorder = router.RouterRecorder(model)
    lm = make_lm(model, tokenizer, batch_size=len(requests), max_length=info.max_length)
    try:
        with recorder.track("zeros"):
            lm._loglikelihood_tokens(requests, disable_tqdm=True)
    finally:
        recorder.close()
    assert [sum(layer) for layer in _tokens(recorder, "zeros")] == [(6 + 3 + 1) * TOP_K] * 2


def test_rows_give_the_real_positions_of_each_batch_longest_first() -> None:
    import torch

    requests = [(None, [1, 2], [3]), (None, [4, 5, 6], [7, 8]), (None, [4, 5, 6], [7, 9]), (None, [1], [2, 3, 4])]
    # Inputs [1, 2], [4, 5, 6, 7] (twice: one row) and [1, 2, 3]; at most 3 tokens: [5, 6, 7].
    rows = LoglikelihoodRows(requests, max_length=3, shared=True)
    first = rows.real(torch.tensor([[5, 6, 7], [1, 2, 3]]))
    assert first.tolist() == [[True, True, True], [True, True, True]]
    second = rows.real(torch.tensor([[1, 2]]))
    assert second.tolist() == [[True, True]]
    rows.check_all_fed()

    unshared = LoglikelihoodRows(requests, max_length=3, shared=False)  # each request its own row
    assert unshared.real(torch.tensor([[5, 6, 7], [5, 6, 7], [1, 2, 3], [1, 2, 0]])).tolist() == [
        [True] * 3,
        [True] * 3,
        [True] * 3,
        [True, True, False],
    ]


@pytest.mark.parametrize(
    ("batch", "what"),
    [
        ([[4, 5, 6, 0], [1, 2, 0, 0]], "width 4"),  # wider than its longest row
        ([[4, 5, 6], [1, 2, 9]], "not one of the inputs"),  # a token where [1, 2] is padded
        ([[4, 5, 6], [1, 3, 0]], "not one of the inputs"),  # a row that is no request's input
        ([[4, 5, 6], [1, 2, 0], [1, 2, 0]], "3 rows where 2 are left"),
    ],
)
def test_rows_refuse_a_batch_that_is_not_the_next_one(batch: list[list[int]], what: str) -> None:
    import torch

    rows = LoglikelihoodRows([(None, [1, 2], [3]), (None, [4, 5], [6, 7])], max_length=8, shared=True)
    with pytest.raises(RuntimeError, match=what):
        rows.real(torch.tensor(batch))


def test_rows_never_fed_are_an_error() -> None:
    import torch

    rows = LoglikelihoodRows([(None, [1, 2], [3]), (None, [4, 5], [6, 7])], max_length=8, shared=True)
    rows.real(torch.tensor([[4, 5, 6]]))
    with pytest.raises(RuntimeError, match="1 of its rows never fed"):
        rows.check_all_fed()
