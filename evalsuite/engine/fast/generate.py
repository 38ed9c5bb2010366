"""Batched greedy decoding with a KV cache, stopping each row exactly where lm-eval's HF class stops at batch 1.

Prompts of similar length share a batch (left-padded, with an attention mask and per-row positions);
a row stops at an end-of-sequence token, at its token cap (v1: 256), or when one of its stop strings
appears in the decoded last tokens (lm-eval's look-back: the stop string's own length in tokens plus
two). Rows that stop leave the batch, so they cost nothing more. The text is cut at the stop strings
afterwards, as lm-eval does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evalsuite.engine.fast.budget import is_out_of_memory, release_memory
from evalsuite.engine.fast.scorer import Counters
from evalsuite.errors import ModelError
from evalsuite.moe import positions

# Generation settings that would change greedy decoding; a model whose generation_config sets one
# generates on the exact path.
_PROCESSORS = (
    ("repetition_penalty", (None, 1.0)),
    ("no_repeat_ngram_size", (None, 0)),
    ("bad_words_ids", (None,)),
    ("suppress_tokens", (None,)),
    ("begin_suppress_tokens", (None,)),
    ("forced_bos_token_id", (None,)),
    ("forced_eos_token_id", (None,)),
    ("min_length", (None, 0)),
    ("min_new_tokens", (None, 0)),
    ("sequence_bias", (None,)),
)


def plain_greedy(generation_config: Any) -> bool:
    """True when greedy decoding is a bare argmax for this model (no logits processors)."""
    return all(getattr(generation_config, name, None) in neutral for name, neutral in _PROCESSORS)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: tuple[int, ...]
    until: tuple[str, ...]  # stop strings, the end-of-sequence text included
    max_new_tokens: int


class Stopper:
    """lm-eval's MultiTokenEOSCriteria for one row: a stop string seen in the decoded look-back window."""

    def __init__(self, tokenizer: Any, until: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.windows = [(s, len(tokenizer.encode(s, add_special_tokens=False)) + 2) for s in until]

    def hit(self, generated: Sequence[int]) -> bool:
        return any(s in self.tokenizer.decode(generated[-n:], skip_special_tokens=False) for s, n in self.windows)


def cut(text: str, until: Sequence[str]) -> str:
    """The text before the first stop string (lm-eval's postprocessing, in the same order)."""
    for term in until:
        if term:
            text = text.split(term)[0]
    return text


class Generator:
    def __init__(
        self, model: Any, tokenizer: Any, max_batch_tokens: int, pad_token_id: int, counters: Counters
    ) -> None:
        eos = model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_tokens = max_batch_tokens
        self.pad_token_id = pad_token_id
        self.counters = counters
        self.prefill_chunk: int | None = None  # set after an out-of-memory error on one row
        self.device = model.get_input_embeddings().weight.device

    def generate(self, requests: Sequence[GenerationRequest], on_done: Callable[[int, list[int]], Any]) -> None:
        """Calls `on_done(index, tokens)` with the generated token ids of each request (stop token included,
        as `generate` returns them) as its batch completes."""
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].prompt))
        i = 0
        while i < len(order):
            first = requests[order[i]]
            rows = max(1, self.max_batch_tokens // (len(first.prompt) + first.max_new_tokens))
            batch = order[i : i + rows]
            for index, tokens in zip(batch, self._run([requests[j] for j in batch]), strict=True):
                on_done(index, tokens)
            i += len(batch)

    def _run(self, batch: list[GenerationRequest]) -> list[list[int]]:
        try:
            return self._decode(batch)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            release_memory()
            self.counters.oom_retries += 1
            if len(batch) == 1:
                chunk = self.prefill_chunk or len(batch[0].prompt)
                if chunk <= 1:
                    raise ModelError(
                        f"out of memory generating for one prompt of {len(batch[0].prompt)} tokens; "
                        "free memory on the device or use a smaller --dtype"
                    ) from exc
                self.prefill_chunk = chunk // 2  # read the prompt in pieces: same cache, same result
                return self._run(batch)
            held = len(batch) * max(len(r.prompt) + r.max_new_tokens for r in batch)
            self.max_batch_tokens = max(1, min(self.max_batch_tokens, held) // 2)
            half = len(batch) // 2
            return self._run(batch[:half]) + self._run(batch[half:])

    def _decode(self, batch: list[GenerationRequest]) -> list[list[int]]:
        import torch
        from transformers import DynamicCache

        rows, width = len(batch), max(len(r.prompt) for r in batch)
        ids = torch.full((rows, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        for i, req in enumerate(batch):
            if req.prompt:
                ids[i, width - len(req.prompt) :] = torch.tensor(req.prompt, dtype=torch.long)
                mask[i, width - len(req.prompt) :] = 1
        position = (mask.cumsum(dim=1) - 1).clamp(min=0)
        stoppers = [Stopper(self.tokenizer, r.until) for r in batch]
        generated: list[list[int]] = [[] for _ in batch]
        active = list(range(rows))
        cache = DynamicCache()
        mask, position = mask.to(self.device), position.to(self.device)
        chunk = self.prefill_chunk or width
        with torch.no_grad():
            for s in range(0, width, chunk):  # the prompts; in pieces after an out-of-memory error
                part = slice(s, s + chunk)
                out = self._step(ids[:, part], mask[:, : s + chunk], position[:, part], cache, mask[:, part].bool())
            while True:
                picked = out.logits[:, -1, :].argmax(dim=-1).tolist()
                still = []
                for slot, (row, token) in enumerate(zip(active, picked, strict=True)):
                    tokens = generated[row]
                    tokens.append(int(token))
                    done = token in self.eos or len(tokens) >= batch[row].max_new_tokens or stoppers[row].hit(tokens)
                    if not done:
                        still.append(slot)
                if not still:
                    return generated
                if len(still) < len(active):
                    keep = torch.tensor(still, device=self.device)
                    cache.batch_select_indices(keep)
                    mask, position = mask[keep], position[keep]
                    active = [active[s] for s in still]
                feed = torch.tensor([[generated[row][-1]] for row in active], dtype=torch.long)
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                position = position[:, -1:] + 1
                out = self._step(feed, mask, position, cache, torch.ones((len(active), 1), dtype=torch.bool))

    def _step(self, ids: Any, mask: Any, position: Any, cache: Any, real: Any) -> Any:
        with positions.publish(real):
            out = self.model(
                input_ids=ids.to(self.device),
                attention_mask=mask,
                position_ids=position,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        self.counters.positions += int(real.sum())
        self.counters.padded += real.numel()
        return out
