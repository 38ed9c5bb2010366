"""v1's generation arithmetic under truncation (evalsuite.engine.v1_hflm), derived from v1's code.

v1's `_model_generate` kept the context's last `max_length - max_gen_toks` tokens, generated greedily,
and returned `generations[:, untruncated_context_width:]`. The expected texts are built here with
transformers' `generate` directly, following those lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import GOLDEN

MODEL = GOLDEN / "models" / "tiny-moe-short"
NEVER = "\x00never"  # a stop string the model does not produce: only EOS and the token budget stop it


@pytest.fixture(scope="module")
def short_lm() -> tuple[Any, Any, Any]:
    from conftest import load_backend_of

    backend = load_backend_of(model=str(MODEL), backend="hf", device="cpu")
    return backend.module, backend.lm.tokenizer, backend.lm


def _gsm8k_context() -> str:
    row = json.loads((GOLDEN / "golden" / "tiny-moe-short" / "samples" / "gsm8k.jsonl").read_text().splitlines()[0])
    return row["requests"][0]["context"]


def _v1_generate(model: Any, tokenizer: Any, text: str, max_length: int, max_gen_toks: int) -> str:
    import torch

    input_ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    kept = input_ids[:, max_gen_toks - max_length :]
    out = model.generate(
        input_ids=kept, attention_mask=torch.ones_like(kept), max_new_tokens=max_gen_toks, do_sample=False
    )
    response = tokenizer.batch_decode(out[:, input_ids.shape[1] :].tolist(), skip_special_tokens=True)[0]
    for term in (NEVER, tokenizer.eos_token):
        response = response.split(term)[0]
    return response


def _generate(lm: Any, text: str) -> str:
    from lm_eval.api.instance import Instance

    args = (text, {"until": [NEVER], "max_gen_toks": lm.max_gen_toks, "do_sample": False})
    return lm.generate_until([Instance("generate_until", {}, args, 0)], disable_tqdm=True)[0]


@pytest.mark.slow
@pytest.mark.parametrize("overshoot", [0, 7])
def test_a_truncated_generation_drops_as_many_leading_tokens_as_the_context_overshoots(
    short_lm: tuple[Any, Any, Any], overshoot: int
) -> None:
    model, tokenizer, lm = short_lm
    assert (lm.max_length, lm.max_gen_toks) == (512, 256)
    kept = 512 - 256
    ids = tokenizer(_gsm8k_context(), add_special_tokens=False)["input_ids"]
    text = tokenizer.decode(ids[-(kept + overshoot) :])
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) == kept + overshoot

    got = _generate(lm, text)
    assert got == _v1_generate(model, tokenizer, text, 512, 256)
    assert got  # the budget of 256 new tokens outlasts the overshoot: text remains
    # What lm-eval's own arithmetic keeps: every generated token. It agrees only without overshoot.
    from lm_eval.models.huggingface import HFLM

    stock = HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", max_length=512, add_bos_token=False)
    assert (_generate(stock, text) == got) is (overshoot == 0)


@pytest.mark.slow
def test_a_context_longer_than_the_model_generates_nothing(short_lm: tuple[Any, Any, Any]) -> None:
    # The GSM8k prompts are longer than 256 + 256 tokens: v1 cut past the end of everything generated.
    model, tokenizer, lm = short_lm
    text = _gsm8k_context()
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) > 512
    assert _generate(lm, text) == "" == _v1_generate(model, tokenizer, text, 512, 256)


def test_the_short_reference_truncates_both_kinds_of_request() -> None:
    # tiny-moe-short checks truncation only if prompts are longer than its 512 positions: the 25-shot ARC
    # and 10-shot HellaSwag log-likelihood requests and the GSM8k generations are.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    longest = {}
    for task in ("arc_challenge", "hellaswag", "gsm8k"):
        rows = (GOLDEN / "golden" / "tiny-moe-short" / "samples" / f"{task}.jsonl").read_text().splitlines()
        longest[task] = max(
            len(tokenizer(r["context"] + r.get("continuation", ""), add_special_tokens=False)["input_ids"])
            for row in map(json.loads, rows)
            for r in row["requests"]
        )
    assert all(n > 512 for n in longest.values()), longest


@pytest.mark.slow
def test_a_run_records_the_engine_that_answered(tiny_run: Path, golden_runs: Callable[[str], Path]) -> None:
    from evalsuite.results import load_run

    assert load_run(golden_runs("tiny-moe")).model.engine == "evalsuite.engine.v1_hflm.V1HFLM"  # --backend hf
    assert load_run(tiny_run).model.engine == "evalsuite.engine.fast.lm.FastLM"  # the default
