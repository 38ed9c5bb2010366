"""The fast backend's parts on the reference tiny MoE: tokenisation as the exact path, the prefix floor,
log-likelihoods and generations against lm-eval's HF class at batch size 1, truncated requests on the
exact path, out-of-memory retries, and router counts that follow their definition (each position
forwarded once, a shared prefix once for all its requests)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from conftest import GOLDEN, as_backend, load_model_of
from evalsuite.benchmarks.contract import Request
from evalsuite.engine.fast.trie import build_plan, unique_prefix_floor
from evalsuite.engine.tokenize import TokenRequest, encode_pair, encode_pairs, prefix_token_id
from evalsuite.errors import ConfigError
from evalsuite.moe import recorder as router

TINY_MOE = GOLDEN / "models" / "tiny-moe"
LL_TOLERANCE = 1e-4  # the fidelity bar: float rounding only
TOP_K = 2  # the reference tiny MoE routes each position to 2 of its 4 experts

SHOTS = "Question: What is two plus two?\nAnswer: four\n\nQuestion: Name a colour.\nAnswer: blue\n\n"
PAIRS = [
    (SHOTS + "Question: What do bees make?\nAnswer:", " honey"),
    (SHOTS + "Question: What do bees make?\nAnswer:", " wax and honey"),
    (SHOTS + "Question: What do bees make?\nAnswer:", " nothing at all, said the bear"),
    (SHOTS + "Question: Where is Paris?\nAnswer: ", "France"),  # trailing space moves to the continuation
    (SHOTS + "Question: Where is Paris?\nAnswer:", " France"),
    ("The cat sat on the", " mat"),
    ("", "An empty context is scored after the prefix token"),
]
# Two long requests with nothing in common: rows of a batch, the shorter one right-padded.
LONG_PAIRS = [
    ("Story: " + " ".join(f"{letter}{i}" for i in range(n)), " end") for letter, n in (("a", 120), ("b", 114))
]
PROMPTS = [SHOTS + "Question: What do bees make?\nAnswer:", "Question: Name a colour.\nAnswer:", "Once upon a time"]
UNTIL = [":", "Question:", "Question"]


@pytest.fixture(scope="module")
def loaded() -> tuple[Any, Any, Any]:
    return load_model_of(model=str(TINY_MOE), device="cpu", dtype="float32")


def _lms(loaded: tuple[Any, Any, Any], max_batch_tokens: int, max_length: int | None = None) -> tuple[Any, Any]:
    """lm-eval's HF class as the hf backend sets it up, and the fast backend's LM over the same model."""
    from evalsuite.engine.fast.lm import FastLM
    from evalsuite.engine.hf import make_lm

    model, tokenizer, info = loaded
    length = max_length or info.max_length

    def exact() -> Any:
        return make_lm(model, tokenizer, batch_size=1, max_length=length)

    return exact(), FastLM(exact(), max_batch_tokens)


def _instances(request_type: str, args: list[tuple[Any, ...]]) -> list[Any]:
    from lm_eval.api.instance import Instance

    return [Instance(request_type=request_type, doc={}, arguments=a, idx=0) for a in args]


def _generate_args() -> list[tuple[str, dict]]:
    return [(p, {"until": list(UNTIL), "max_gen_toks": 24, "do_sample": False}) for p in PROMPTS]


def _distinct_prefixes(inputs: list[tuple[int, ...]]) -> int:
    """By definition: the set of all non-empty prefixes of the inputs."""
    return len({x[:n] for x in inputs for n in range(1, len(x) + 1)})


def test_tokenisation_is_the_exact_paths(loaded: tuple[Any, Any, Any]) -> None:
    hf, _ = _lms(loaded, 4096)
    _, tokenizer, _ = loaded
    batched = encode_pairs(tokenizer, PAIRS + LONG_PAIRS, prefix_token_id(tokenizer))  # one batch call
    for (context, continuation), in_batch in zip(PAIRS + LONG_PAIRS, batched, strict=True):
        ours = encode_pair(tokenizer, context, continuation, prefix_token_id(tokenizer))
        assert in_batch == ours
        if context:
            want_ctx, want_cont = hf._encode_pair(context, continuation)
        else:  # lm-eval: the prefix token (BOS here) stands for the empty context
            want_ctx, want_cont = [tokenizer.bos_token_id], hf.tok_encode(continuation, add_special_tokens=False)
        assert (list(ours.context), list(ours.continuation)) == (want_ctx, want_cont)
        assert tokenizer.bos_token_id not in ours.context[1:] + ours.continuation  # no BOS added


def test_the_plan_forwards_each_distinct_prefix_once() -> None:
    requests = [
        TokenRequest((1, 2, 3), (4, 5)),
        TokenRequest((1, 2, 3), (6,)),
        TokenRequest((1, 2, 3), (4, 7)),  # same input as the first: (1, 2, 3, 4)
        TokenRequest((1, 2), (3, 8, 9)),
        TokenRequest((9,), (1,)),
    ]
    inputs = [r.input for r in requests]
    # Prefixes: (1) (1,2) (1,2,3) (1,2,3,4) (1,2,3,8) (9)
    expected = 6
    segments = sum(len(node.tokens) for node in build_plan(requests).root.walk())  # what the scorer forwards
    assert segments == unique_prefix_floor(inputs) == _distinct_prefixes(inputs) == expected
    # Every continuation token is scored exactly once: 2 + 1 + 2 + 3 + 1.
    targets = [t for node in build_plan(requests).root.walk() for t in node.targets]
    assert len(targets) == 2 + 1 + 2 + 3 + 1


@pytest.mark.parametrize("budget", [64, 4096])
def test_loglikelihoods_equal_the_exact_path(loaded: tuple[Any, Any, Any], budget: int) -> None:
    hf, fast = _lms(loaded, budget)
    instances = _instances("loglikelihood", PAIRS)
    want = hf.loglikelihood(instances, disable_tqdm=True)
    got = fast.loglikelihood(instances, disable_tqdm=True)
    for (lp, greedy), (ref_lp, ref_greedy) in zip(got, want, strict=True):
        assert abs(lp - ref_lp) <= LL_TOLERANCE
        assert greedy == ref_greedy


def test_requests_that_need_truncation_take_the_exact_path(loaded: tuple[Any, Any, Any]) -> None:
    _, tokenizer, _ = loaded
    short = 24  # the few-shot requests are longer: the exact path cuts them from the left
    hf, fast = _lms(loaded, 4096, max_length=short)
    lengths = [encode_pair(tokenizer, c, x, prefix_token_id(tokenizer)).length for c, x in PAIRS]
    assert any(n > short + 1 for n in lengths) and any(n <= short + 1 for n in lengths)
    instances = _instances("loglikelihood", PAIRS)
    want = hf.loglikelihood(instances, disable_tqdm=True)
    got = fast.loglikelihood(instances, disable_tqdm=True)
    for (lp, _), (ref_lp, _), n in zip(got, want, lengths, strict=True):
        if n > short + 1:
            assert lp == ref_lp  # the same code path: bit-identical
        else:
            assert abs(lp - ref_lp) <= LL_TOLERANCE
    assert fast.reading().exact_requests == sum(n > short + 1 for n in lengths)


def test_the_floor_inputs_are_those_the_exact_path_feeds(loaded: tuple[Any, Any, Any]) -> None:
    max_length = 40  # LONG_PAIRS need truncation: the exact path answers them, their inputs are cut the same
    hf, fast = _lms(loaded, 4096, max_length=max_length)
    assert fast.take_inputs() is None  # nothing is kept until asked
    fast.keep_inputs()
    fast.loglikelihood(_instances("loglikelihood", PAIRS + LONG_PAIRS), disable_tqdm=True)
    # lm-eval's own encoding (an empty context is its prefix token), then its left truncation:
    # (context + continuation)[-(max_length + 1):][:-1]
    encoded = [
        hf._encode_pair(ctx, cont) if ctx else ([hf.prefix_token_id], hf.tok_encode(cont))
        for ctx, cont in PAIRS + LONG_PAIRS
    ]
    fed = [tuple((ctx + cont)[-(max_length + 1) :][:-1]) for ctx, cont in encoded]
    assert [r.truncated_input(max_length) for r in fast.take_inputs()] == fed
    assert fast.take_inputs() == []  # taken once


def test_out_of_memory_retries_with_smaller_batches(loaded: tuple[Any, Any, Any]) -> None:
    import torch

    model, _, _ = loaded
    hf, fast = _lms(loaded, 4096)
    instances = _instances("loglikelihood", PAIRS)
    want = hf.loglikelihood(instances, disable_tqdm=True)

    def refuse_big_batches(module: Any, args: Any, kwargs: dict) -> None:
        ids = kwargs["input_ids"]
        if ids.shape[0] > 1 or ids.shape[1] > 16:  # a device that holds one row of 16 positions
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    gen = _instances("generate_until", _generate_args())
    texts = hf.generate_until(gen, disable_tqdm=True)
    handle = model.register_forward_pre_hook(refuse_big_batches, with_kwargs=True)
    try:
        got = fast.loglikelihood(instances, disable_tqdm=True)
        got_texts = fast.generate_until(gen, disable_tqdm=True)
    finally:
        handle.remove()
    for (lp, greedy), (ref_lp, ref_greedy) in zip(got, want, strict=True):
        assert abs(lp - ref_lp) <= LL_TOLERANCE and greedy == ref_greedy
    assert got_texts == texts
    assert fast.settings["out_of_memory_retries"] > 0
    assert fast.max_batch_tokens < 4096


def test_generations_equal_the_exact_path_at_batch_size_1(loaded: tuple[Any, Any, Any]) -> None:
    model, tokenizer, _ = loaded
    hf, fast = _lms(loaded, 4096)
    instances = _instances("generate_until", _generate_args())
    assert fast.generate_until(instances, disable_tqdm=True) == hf.generate_until(instances, disable_tqdm=True)
    # A stop string the model does produce (from its own unstopped output): both stop at the same step.
    free = hf.generate_until(_instances("generate_until", [(PROMPTS[0], {"until": [], "max_gen_toks": 24})]))[0]
    stop = free[6:9]
    stopped = _instances("generate_until", [(PROMPTS[0], {"until": [stop], "max_gen_toks": 24})])
    fed = [0]

    def count(module: Any, args: Any, kwargs: dict) -> None:
        fed[0] += kwargs["input_ids"].numel()  # batch size 1: every position is real

    handle = model.register_forward_pre_hook(count, with_kwargs=True)
    try:
        want = hf.generate_until(stopped, disable_tqdm=True)
    finally:
        handle.remove()
    before = fast.reading().positions
    assert fast.generate_until(stopped, disable_tqdm=True) == want == [free[: free.index(stop)]]
    prompt = len(tokenizer.encode(PROMPTS[0], add_special_tokens=False))
    # Fed: the prompt and each generated token but the last; fewer than the cap of 24 allows.
    assert fast.reading().positions - before == fed[0] < prompt + 24 - 1


def test_rows_that_join_and_leave_few_slots_generate_what_the_exact_path_does(
    loaded: tuple[Any, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalsuite.engine.fast.slots import Slots

    hf, fast = _lms(loaded, 64)  # a cache of a few rows: prompts wait, join as rows stop, buffers compact
    prompts = [*PROMPTS, "The cat sat on the", "Question: Where is Paris?\nAnswer:", SHOTS]
    args = [(p, {"until": list(UNTIL), "max_gen_toks": n}) for p in prompts for n in (3, 24)]
    made, compacted = [], []
    init, compact = Slots.__init__, Slots._compact

    def slots(self: Any, rows: int, *rest: Any) -> None:
        made.append(rows)
        init(self, rows, *rest)

    def compacting(self: Any) -> None:
        compacted.append(self.frontier)
        compact(self)

    monkeypatch.setattr(Slots, "__init__", slots)
    monkeypatch.setattr(Slots, "_compact", compacting)
    instances = _instances("generate_until", args)
    assert fast.generate_until(instances, disable_tqdm=True) == hf.generate_until(instances, disable_tqdm=True)
    assert made and max(made) < len(args) and compacted


def test_next_token_is_the_first_maximum_and_non_finite_rows_are_named() -> None:
    import torch

    from evalsuite.engine.fast.generate import next_tokens

    logits = torch.tensor([[0.0, 2.0, 2.0, 1.0], [3.0, -1.0, 3.0, 3.0]])  # ties: the lowest token id wins
    assert next_tokens(logits) == ([1, 0], None, 0.0)
    logits[1, 2] = float("nan")
    picked, bad, value = next_tokens(logits)
    assert bad == 1 and math.isnan(value)
    logits[1, 2], logits[0, 3] = 0.0, float("-inf")
    assert next_tokens(logits)[1:] == (0, float("-inf"))


def test_rolling_loglikelihood_is_a_clear_error(loaded: tuple[Any, Any, Any]) -> None:
    _, fast = _lms(loaded, 4096)
    with pytest.raises(ConfigError, match="--backend hf"):
        fast.loglikelihood_rolling(_instances("loglikelihood_rolling", [("some text",)]))


def _routed(recorder: Any, benchmark: str) -> list[int]:
    """Per layer: positions counted over all experts."""
    frame = recorder.frame()
    rows = frame[frame["benchmark"] == benchmark]
    return rows.groupby("layer")["tokens"].sum().tolist()


def test_router_counts_each_forwarded_position_once(loaded: tuple[Any, Any, Any]) -> None:
    model, tokenizer, _ = loaded
    hf, fast = _lms(loaded, 2048)
    pairs = PAIRS + LONG_PAIRS
    recorder = router.RouterRecorder(model)
    try:
        with recorder.track("loglikelihood"):
            fast.loglikelihood(_instances("loglikelihood", pairs), disable_tqdm=True)
        # Padding was forwarded (and must not be counted).
        assert fast.reading().padded > fast.reading().positions
        gen = _instances("generate_until", _generate_args())
        with recorder.track("fast_generation"):
            fast.generate_until(gen, disable_tqdm=True)
        with recorder.track("exact_generation"):  # batch size 1: every fed position is real
            hf.generate_until(gen, disable_tqdm=True)
    finally:
        recorder.close()
    # Hand count: the distinct prefixes of the model inputs, each routed to TOP_K experts per layer.
    prefix = prefix_token_id(tokenizer)
    inputs = [encode_pair(tokenizer, c, x, prefix).input for c, x in pairs]
    assert _routed(recorder, "loglikelihood") == [_distinct_prefixes(inputs) * TOP_K] * 2
    # Generation feeds each prompt token and each generated token but the last, as batch size 1 does.
    assert _routed(recorder, "fast_generation") == _routed(recorder, "exact_generation")


class _Recorded:
    """lm-eval's CacheHook interface, keeping what the backend hands it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[Any, ...], Any]] = []

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        self.seen.append((attr, tuple(req), res))


def test_each_answer_reaches_the_cache_hook(loaded: tuple[Any, Any, Any]) -> None:
    # Resume stores what the hook receives: every answer, with its request's arguments, including those
    # of the exact path (a request that needs truncation).
    _, short = _lms(loaded, 4096, max_length=40)
    _, fast = _lms(loaded, 4096)
    hook = _Recorded()
    short.set_cache_hook(hook)
    fast.set_cache_hook(hook)
    pairs = PAIRS + LONG_PAIRS  # those over 40 tokens take the exact path
    answers = short.loglikelihood(_instances("loglikelihood", pairs), disable_tqdm=True)
    assert 0 < short.reading().exact_requests < len(pairs)  # both paths answered
    gen = _generate_args()
    texts = fast.generate_until(_instances("generate_until", gen), disable_tqdm=True)
    want = [("loglikelihood", tuple(p), a) for p, a in zip(pairs, answers, strict=True)]
    want += [("generate_until", tuple(g), t) for g, t in zip(gen, texts, strict=True)]
    assert sorted(map(repr, hook.seen)) == sorted(map(repr, want))


# Documents with nothing in common, each with short choices: the choices of every document continue a
# different prefix.
DOCUMENTS = [
    (f"{subject} is the topic of question {i}. Which word fits best here? Answer:", choice)
    for i, subject in enumerate(("Rain", "Cheese", "Orbit", "Granite", "Violin", "Harbour"))
    for choice in (" yes", " no", " perhaps not today")
]


def _passes(model: Any) -> tuple[list[int], Any]:
    """A hook counting forward passes (their input shapes) on the model."""
    shapes: list[int] = []

    def count(module: Any, args: Any, kwargs: dict) -> None:
        shapes.append(int(kwargs["input_ids"].shape[0]))

    return shapes, model.register_forward_pre_hook(count, with_kwargs=True)


def test_continuations_of_different_prefixes_share_a_pass(loaded: tuple[Any, Any, Any]) -> None:
    model, _, _ = loaded
    hf, fast = _lms(loaded, 4096)
    instances = _instances("loglikelihood", DOCUMENTS)
    want = hf.loglikelihood(instances, disable_tqdm=True)
    shapes, handle = _passes(model)
    try:
        got = fast.loglikelihood(instances, disable_tqdm=True)
    finally:
        handle.remove()
    for (lp, greedy), (ref_lp, ref_greedy) in zip(got, want, strict=True):
        assert abs(lp - ref_lp) <= LL_TOLERANCE and greedy == ref_greedy
    documents = len(DOCUMENTS) // 3
    # One pass for the contexts, then the choices of all documents: not one pass per document.
    assert len(shapes) < documents
    assert max(shapes) >= documents


def _distinct_scored(inputs: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> int:
    """By definition: the distinct input prefixes whose last position predicts a continuation token."""
    return len({(ctx + cont)[: p + 1] for ctx, cont in inputs for p in range(len(ctx) - 1, len(ctx + cont) - 1)})


@pytest.mark.parametrize("name", ["tiny-moe", "tiny-llama"])
def test_feed_forward_runs_on_real_positions_and_in_the_last_layer_on_scored_ones(name: str) -> None:
    from evalsuite.engine.fast import sparse

    loaded = load_model_of(model=str(GOLDEN / "models" / name), device="cpu", dtype="float32")
    model, tokenizer, _ = loaded
    hf, fast = _lms(loaded, 2048)
    pairs = PAIRS + LONG_PAIRS + DOCUMENTS  # padded rows, packed rows, rows of different prefixes
    instances = _instances("loglikelihood", pairs)
    want = hf.loglikelihood(instances, disable_tqdm=True)
    modules = sparse.feed_forwards(model)
    fed = [0] * len(modules)

    def counter(layer: int) -> Any:
        def count(module: Any, args: Any, output: Any) -> None:
            hidden = args[0]
            fed[layer] += hidden.shape[0] * hidden.shape[1] if hidden.dim() == 3 else hidden.shape[0]

        return count

    fast.loglikelihood(instances[:1], disable_tqdm=True)  # each module's first call runs in full (a check)
    handles = [m.register_forward_hook(counter(i)) for i, m in enumerate(modules)]
    try:
        got = fast.loglikelihood(instances, disable_tqdm=True)
    finally:
        for handle in handles:
            handle.remove()
    for (lp, greedy), (ref_lp, ref_greedy) in zip(got, want, strict=True):
        assert abs(lp - ref_lp) <= LL_TOLERANCE and greedy == ref_greedy
    prefix = prefix_token_id(tokenizer)
    encoded = [encode_pair(tokenizer, c, x, prefix) for c, x in pairs]
    assert fast.reading().padded > fast.reading().positions  # there was padding to leave out
    real = _distinct_prefixes([e.input for e in encoded])
    scored = _distinct_scored([(e.context, e.continuation) for e in encoded])
    assert len(modules) >= 2 and scored < real
    assert fed == [real] * (len(modules) - 1) + [scored]


def test_answers_reach_the_cache_hook_as_they_complete(loaded: tuple[Any, Any, Any]) -> None:
    # Resume keeps what the hook received: a call interrupted midway keeps the requests already scored.
    model, _, _ = loaded
    _, fast = _lms(loaded, 256)  # a small budget: many passes
    shapes, handle = _passes(model)
    passes_at_arrival: list[int] = []

    class Hook(_Recorded):
        def add_partial(self, attr: str, req: Any, res: Any) -> None:
            passes_at_arrival.append(len(shapes))
            super().add_partial(attr, req, res)

    fast.set_cache_hook(Hook())
    try:
        fast.loglikelihood(_instances("loglikelihood", DOCUMENTS), disable_tqdm=True)
    finally:
        handle.remove()
    assert len(passes_at_arrival) == len(DOCUMENTS)
    assert passes_at_arrival[0] < len(shapes)  # the first answer arrived before the last pass ran


def test_out_of_memory_after_the_logits_adds_nothing_twice(loaded: tuple[Any, Any, Any], monkeypatch: Any) -> None:
    # The pass succeeded but keeping a node's cache for its children ran out of memory: the retry of the
    # pass must not add its log-probabilities a second time, nor report a request before it is complete.
    import torch

    from evalsuite.engine.fast.scorer import PrefixScorer

    hf, fast = _lms(loaded, 4096)
    instances = _instances("loglikelihood", PAIRS + DOCUMENTS)
    want = hf.loglikelihood(instances, disable_tqdm=True)
    real_row_past = PrefixScorer._row_past
    failures = [2]  # the first two caches kept fail

    def failing_row_past(*args: Any) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_row_past(*args)

    monkeypatch.setattr(PrefixScorer, "_row_past", staticmethod(failing_row_past))
    hook = _Recorded()
    fast.set_cache_hook(hook)
    got = fast.loglikelihood(instances, disable_tqdm=True)
    assert failures == [0] and fast.settings["out_of_memory_retries"] >= 2
    for (lp, greedy), (ref_lp, ref_greedy) in zip(got, want, strict=True):
        assert abs(lp - ref_lp) <= LL_TOLERANCE and greedy == ref_greedy
    # each request reported once, with its final answer
    assert sorted(map(repr, hook.seen)) == sorted(
        repr(("loglikelihood", tuple(i.args), a)) for i, a in zip(instances, got, strict=True)
    )


def test_layers_sharing_a_feed_forward_run_in_full() -> None:
    # A module called by two layers cannot be cut to the last layer's scored positions: no hooks at all.
    from transformers import LlamaConfig, LlamaForCausalLM

    from evalsuite.engine.fast import sparse

    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2
    )
    model = LlamaForCausalLM(config)
    assert len(sparse.feed_forwards(model)) == 2
    model.model.layers[1].mlp = model.model.layers[0].mlp
    assert sparse.feed_forwards(model) == []


# --- bits independent of the process's history ------------------------------------------------------


def _reference_requests() -> list[Any]:
    """ARC's and HellaSwag's first 20 documents of the reference data: one call of the fast backend."""
    from evalsuite.benchmarks.table import select
    from evalsuite.data.sources import source_for
    from evalsuite.pipeline.evaluate import prepare_all

    specs = select(("arc", "hellaswag"))
    prepared = prepare_all(specs, source_for(GOLDEN / "data"), 20)
    return _instances("loglikelihood", [r.arguments for s in specs for item in prepared[s.name] for r in item.requests])


def test_a_resumed_call_answers_bit_for_bit_as_the_uninterrupted_one(loaded: tuple[Any, Any, Any], tmp_path) -> None:
    from evalsuite.engine.fast import FAST_CALLS
    from evalsuite.resume.lm import ResumableBackend, resumable
    from evalsuite.resume.store import AnswerStore

    requests = _reference_requests()
    _, fast = _lms(loaded, 8192)
    assert len(requests) <= FAST_CALLS.per_call["loglikelihood"]
    whole = resumable(fast, AnswerStore(tmp_path / "whole.jsonl", "fp"), FAST_CALLS)
    uninterrupted = whole.loglikelihood(requests)
    whole.store.close()
    # the first half of the answers, as they reached the store before a kill
    lines = (tmp_path / "whole.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "killed.jsonl").write_bytes(b"".join(lines[: len(lines) // 2]))
    _, again = _lms(loaded, 8192)
    resumed = ResumableBackend(as_backend(again, FAST_CALLS), AnswerStore(tmp_path / "killed.jsonl", "fp"))
    as_requests = [Request(*inst.args) for inst in requests]
    assert resumed.answered(as_requests) == set()  # a partly answered call is asked again, whole
    assert resumed.lm.loglikelihood(requests) == uninterrupted  # every bit


def test_the_cpu_budget_does_not_follow_free_memory() -> None:
    import numpy as np
    import torch

    from evalsuite.engine.fast.budget import default_max_batch_tokens

    LARGE = dict(
        hidden_size=8192, num_attention_heads=64, num_key_value_heads=8, num_hidden_layers=80,
        intermediate_size=28672, num_experts_per_tok=2,
    )  # fmt: skip

    class Large(torch.nn.Module):
        """A 70B-shaped config (the budget reads the config and the weights' element size only)."""

        config = type("Config", (), LARGE)()

        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

    model = Large()
    before = default_max_batch_tokens(model)
    taken = np.ones(2**30 // 8)  # 1 GiB less free memory, as a process that ran other benchmarks holds
    assert default_max_batch_tokens(model) == before
    del taken


def test_the_first_call_of_a_process_answers_as_every_later_one() -> None:
    fresh = load_model_of(model=str(TINY_MOE), device="cpu", dtype="float32")  # nothing ran on it
    requests = _reference_requests()
    _, fast = _lms(fresh, 8192)
    first = fast.loglikelihood(requests)
    assert fast.loglikelihood(requests) == first  # every bit: what ran before in the process does not matter
