"""lm-eval's HFLM as v1 ran it: answers in parts of a fixed size, and v1's arithmetic for generations
whose context is truncated.

Parts: HFLM sorts a call by length and computes requests that share a context once, so the parts decide
the batches and forward passes, which router statistics count: parts of LOGLIKELIHOOD_PART batches, and
one batch per generate call, whatever size of call the pipeline makes. No progress bar of its own (the
pipeline shows one per benchmark).

Truncation: log-likelihood requests need nothing, v1 and lm-eval both score `(context +
continuation)[-(max_length + 1):][:-1]` and take the continuation's last logits. Generation differs.
v1's `_model_generate` (lm_eval/models/huggingface.py at b281b09) keeps the context's last `max_length -
max_gen_toks` tokens (`input_ids[:, max_gen_toks - max_length:]`), generates, and then cuts the answer
at the length of the context BEFORE truncation (`generations[:, inputs["input_ids"].size(1):]`). When
the context was cut, the first `untruncated - kept` generated tokens are dropped, and when the
generation is shorter than that, the answer is empty. lm-eval cuts at the kept length. This class
reproduces v1.

Non-finite logits: generation stops at the first request whose next-token logits hold NaN or infinity,
before its answer exists (evalsuite.errors.NonFiniteAnswer), as log-likelihoods do.

Real positions: every forward pass publishes which of its positions are real (evalsuite.moe.positions),
for router statistics: the padding of log-likelihood batches and of generation prompts, and the steps
batched generation runs for rows that have stopped, are not (evalsuite.engine.hflm_positions). At batch
size 1 every position is real.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from lm_eval.models.huggingface import HFLM

from evalsuite.engine.hflm_positions import LoglikelihoodRows, generation_positions
from evalsuite.errors import NonFiniteAnswer
from evalsuite.moe import positions

LOGLIKELIHOOD_PART = 32  # batches per HFLM loglikelihood call


def _in_parts(method: Any, requests: list[Any], size: int, disable_tqdm: bool) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(requests), size):
        out += method(requests[start : start + size], disable_tqdm=disable_tqdm)
    return out


class V1HFLM(HFLM):
    # The width of the last context batch before truncation: generate_until encodes the contexts, then
    # generates from them; v1 cut the generated sequence at this width.
    _untruncated_width: int = 0
    # The rows of the running `_loglikelihood_tokens` call, whose batches `_model_call` feeds (every batch
    # of the call: the batch size is a number, never "auto", which would probe with batches of its own).
    _rows: LoglikelihoodRows | None = None

    def loglikelihood(self, requests: Any, disable_tqdm: bool = True) -> Any:
        return _in_parts(super().loglikelihood, requests, LOGLIKELIHOOD_PART * self.batch_size, disable_tqdm)

    def generate_until(self, requests: Any, disable_tqdm: bool = True) -> Any:
        # One batch per call, so that each batch is encoded and generated before the next one.
        return _in_parts(self._generate_batch, requests, self.batch_size, disable_tqdm)

    def _generate_batch(self, batch: list[Any], disable_tqdm: bool = True) -> Any:
        with _finite_logits(self.model, batch):
            return super().generate_until(batch, disable_tqdm=disable_tqdm)

    def tok_batch_encode(
        self,
        strings: list[str],
        padding_side: str = "left",
        left_truncate_len: int | None = None,
        truncation: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        input_ids, attention_mask = super().tok_batch_encode(strings, padding_side, None, truncation)
        self._untruncated_width = input_ids.shape[1]
        if left_truncate_len:
            # v1's slice, as written: with its default max_gen_toks (256), not the request's.
            start = self.max_gen_toks - self.max_length
            input_ids, attention_mask = input_ids[:, start:], attention_mask[:, start:]
        return input_ids, attention_mask

    def _loglikelihood_tokens(self, requests: Any, disable_tqdm: bool = False, override_bs: Any = None) -> Any:
        if self.backend != "causal":
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        self._rows = rows = LoglikelihoodRows(requests, self.max_length, shared=bool(self.logits_cache))
        try:
            out = super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        finally:
            self._rows = None
        rows.check_all_fed()
        return out

    def _model_call(self, inps: torch.Tensor, attn_mask: Any = None, labels: Any = None) -> torch.Tensor:
        real = self._rows.real(inps) if self._rows is not None else None
        with positions.publish(real):
            return super()._model_call(inps, attn_mask, labels)

    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str], **kwargs: Any) -> torch.Tensor:
        with generation_positions(context, kwargs.get("attention_mask")) as decoding:
            generated = super()._model_generate(context, max_length, stop, custom_generate=decoding, **kwargs)
        # generate_until keeps what follows the (truncated) context; hand it what v1 kept instead.
        return torch.cat([context, generated[:, self._untruncated_width :]], dim=1)


@contextlib.contextmanager
def _finite_logits(model: Any, part: list[Any]) -> Iterator[None]:
    """Raises NonFiniteAnswer from the forward pass whose logits are not all finite, while `part` (one
    batch) is generated: before lm-eval hands on the answer. Names the batch's first request (the
    request itself at batch size 1, v1's setting)."""
    passes = 0

    def check(module: Any, args: Any, output: Any) -> None:
        nonlocal passes
        logits = getattr(output, "logits", None)
        if logits is not None and not bool(torch.isfinite(logits).all()):
            value = float(logits[~torch.isfinite(logits)][0])
            raise NonFiniteAnswer("generate_until", part[0].args, value, generated=passes)
        passes += 1  # the prompt's pass, then one per generated token

    handle = model.register_forward_hook(check)
    try:
        yield
    finally:
        handle.remove()
