"""The real token positions of the batches lm-eval's HF class feeds, published (evalsuite.moe.positions)
from evalsuite.engine.v1_hflm through methods HFLM documents for subclasses, without replacing anything
of lm-eval or transformers.

Log-likelihood: a row is a request's `(context + continuation)[:-1]`, its last `max_length` tokens,
right-padded with zeros and passed without an attention mask; requests with the same `context +
continuation[:-1]` share one row while lm-eval caches logits (`logits_cache`, its default). lm-eval feeds
the rows longest first (its sort key starts with the negative length), so a batch of n rows holds the next
n lengths of the sorted list, whichever of the equally long rows it holds. Each batch is checked against
them: every row must be one of the call's inputs followed by zeros, and the call must use every row once.
A real token equal to the padding (0) is told apart by its position, not by its value.

Generation: the prompt's positions are those of its attention mask (left padding, from the tokenizer).
Batched `generate` then feeds every row at every step until the last row stops; a row's steps after it
stopped are not real, since batch size 1 never runs them. A row stops where it would alone: at a token
transformers' own criteria stop it at (end of sequence, the token budget), or when lm-eval's stop
sequences match its own tokens (lm-eval's criterion stops a batch only once every row matched, but
tracks each row). transformers' `custom_generate` hook hands over its stopping criteria; they are
watched there and the decoding loop runs unchanged, so the generated tokens are too.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from lm_eval.models.utils_hf import MultiTokenEOSCriteria
from transformers import StoppingCriteriaList
from transformers.generation.configuration_utils import GenerationMode

from evalsuite.errors import ConfigError
from evalsuite.moe import positions


class LoglikelihoodRows:
    """The rows lm-eval's HF class feeds for one `_loglikelihood_tokens` call (requests: its (key, context
    tokens, continuation tokens) triples); `real(batch)` gives the real positions of its next batch."""

    def __init__(self, requests: Sequence[tuple[Any, list[int], list[int]]], max_length: int, shared: bool) -> None:
        inputs = [tuple(context + continuation[:-1]) for _, context, continuation in requests]
        if shared:  # one row per distinct context + continuation[:-1], fed once whatever the continuation
            inputs = list(dict.fromkeys(inputs))
        rows = [row[-max_length:] for row in inputs]
        self._left = collections.Counter(rows)  # the rows not fed yet
        self._lengths = collections.deque(sorted((len(row) for row in rows), reverse=True))

    def real(self, batch: Any) -> Any:
        """The (rows, width) bool tensor of the real positions of `batch`, the next batch lm-eval feeds;
        raises RuntimeError if it is not made of the rows expected next."""
        count, width = batch.shape
        if count > len(self._lengths):
            raise _unexpected(f"{count} rows where {len(self._lengths)} are left")
        lengths = [self._lengths.popleft() for _ in range(count)]
        if lengths[0] != width:
            raise _unexpected(f"width {width} where its longest row has {lengths[0]} tokens")
        for tokens, n in zip(batch.tolist(), lengths, strict=True):
            row = tuple(tokens[:n])
            if any(tokens[n:]) or self._left[row] == 0:
                raise _unexpected(f"a row that is not one of the inputs of length {n} followed by zeros")
            self._left[row] -= 1
        ends = torch.tensor(lengths, device=batch.device)[:, None]
        return torch.arange(width, device=batch.device)[None, :] < ends

    def check_all_fed(self) -> None:
        """Raises RuntimeError if the call ended with rows that were never fed."""
        if self._lengths:
            raise _unexpected(f"{len(self._lengths)} of its rows never fed")


def _unexpected(what: str) -> RuntimeError:
    return RuntimeError(
        f"lm-eval's HF class fed log-likelihood batches with {what}; its batching is not the one evalsuite "
        "knows (install the lm-eval version pyproject.toml pins)"
    )


@contextlib.contextmanager
def generation_positions(input_ids: Any, attention_mask: Any | None) -> Iterator[ObservedDecoding]:
    """Publishes the real positions of one `generate` call on `input_ids` within the block: pass the
    yielded ObservedDecoding to it as `custom_generate`."""
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    with positions.publish(real) as then:
        yield ObservedDecoding(then)


class ObservedDecoding:
    """A `custom_generate` for transformers' `generate`: runs the decoding loop `generate` would run
    (greedy or sampling: `_sample`) with its stopping criteria watched, and after each step publishes
    (through `then`, evalsuite.moe.positions.publish) which rows the next step feeds for real."""

    def __init__(self, then: Callable[[Any], None]) -> None:
        self.then = then

    def __call__(
        self,
        model: Any,
        input_ids: Any,
        logits_processor: Any,
        stopping_criteria: Any,
        generation_config: Any,
        **model_kwargs: Any,
    ) -> Any:
        mode = generation_config.get_generation_mode()
        if mode not in (GenerationMode.GREEDY_SEARCH, GenerationMode.SAMPLE):
            raise ConfigError(
                f"generation mode {mode.value}: the hf backend generates greedily or by sampling only "
                "(v1 generated greedily); remove the beam or assistant settings from the task's generation kwargs"
            )
        watched = _Watched(stopping_criteria, self.then)
        return type(model)._sample(
            model,
            input_ids,
            logits_processor=logits_processor,
            stopping_criteria=watched,
            generation_config=generation_config,
            **model_kwargs,
        )


class _Watched(StoppingCriteriaList):
    """The same stopping criteria (transformers sees the same answers), also keeping which rows stopped."""

    def __init__(self, criteria: Any, then: Callable[[Any], None]) -> None:
        super().__init__(criteria)
        self.then = then
        self.stopped: Any = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        done = super().__call__(input_ids, scores, **kwargs)
        stopped = done
        for criterion in self:
            if isinstance(criterion, MultiTokenEOSCriteria):  # a stop sequence, matched per row
                stopped = stopped | torch.tensor(criterion.done_tracker, device=done.device)
        self.stopped = stopped if self.stopped is None else self.stopped | stopped
        self.then(~self.stopped[:, None])
        return done
