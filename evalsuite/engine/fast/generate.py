"""Greedy decoding of many prompts at once (continuous batching), each row stopping exactly where lm-eval's
HF class stops at batch 1.

Prompts wait longest first. Each pass of prompts (right-padded to the longest: causal attention with
no mask; the feed-forward run on real positions only and in the last layer only at each row's last one)
fills their keys and values into free slots of a preallocated cache (evalsuite.engine.fast.slots); then
every active row advances one token per decoding step. A row stops at an end-of-sequence token, at its
token cap (v1: 256), or when one of its stop strings appears in the decoded last tokens (lm-eval's
look-back: the stop string's own length in tokens plus two); it leaves its slot at once and the next
waiting prompts take the free slots. How many rows decode together is set by a budget of cache
positions, not a count. On CPU in float32 the matrix products go through oneDNN (evalsuite.engine.fast.
onednn). The text is cut at the stop strings afterwards, as lm-eval does.
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
        windows: dict[int, list[str]] = {}  # look-back in tokens -> the stop strings looking that far back
        for s in until:
            windows.setdefault(len(tokenizer.encode(s, add_special_tokens=False)) + 2, []).append(s)
        self.windows = list(windows.items())

    def hit(self, generated: Sequence[int]) -> bool:
        """Whether the tokens generated so far end the row; only their last few tokens are decoded."""
        for n, stops in self.windows:
            text = self.tokenizer.decode(generated[-n:], skip_special_tokens=False)
            if any(s in text for s in stops):
                return True
        return False


def cut(text: str, until: Sequence[str]) -> str:
    """The text before the first stop string (lm-eval's postprocessing, in the same order)."""
    for term in until:
        if term:
            text = text.split(term)[0]
    return text


def next_tokens(logits: Any) -> tuple[list[int], int | None, float]:
    """The greedy choice of each row from its next-token logits (rows, vocabulary), as v1 chose (HF
    `generate`, greedy): the argmax of the logits in float32, ties to the lowest token id (torch.argmax
    returns the first maximum). Also the first row whose logits are not all finite (None when every row's
    are) and one such value of it: no choice is made from NaN or infinite logits."""
    import torch

    scores = logits.float()
    finite = torch.isfinite(scores).all(dim=-1)
    picked = scores.argmax(dim=-1)
    both = torch.stack([picked, finite.long()]).tolist()  # one wait for the device per step
    bad = next((row for row, ok in enumerate(both[1]) if not ok), None)
    value = float(scores[bad][~torch.isfinite(scores[bad])][0]) if bad is not None else 0.0
    return both[0], bad, value


class NonFiniteLogits(Exception):
    """Request `index`'s next-token logits were not finite (`value`) after `generated` tokens."""

    def __init__(self, index: int, value: float, generated: int) -> None:
        super().__init__(index, value, generated)
        self.index, self.value, self.generated = index, value, generated


@dataclass
class _Row:
    """A request being decoded: its index, the tokens generated so far and its stop-string check."""

    index: int
    request: GenerationRequest
    stopper: Stopper
    tokens: list[int]

    def add(self, token: int, eos: set[int]) -> bool:
        """Appends `token`; True when the row is done."""
        self.tokens.append(token)
        return token in eos or len(self.tokens) >= self.request.max_new_tokens or self.stopper.hit(self.tokens)


class Generator:
    def __init__(
        self, model: Any, tokenizer: Any, max_batch_tokens: int, pad_token_id: int, counters: Counters
    ) -> None:
        from evalsuite.engine.fast.budget import cache_positions

        eos = model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_tokens = max_batch_tokens  # positions of a prompt pass
        self.cache_tokens = cache_positions(model, max_batch_tokens)  # positions of the decoding rows' cache
        self.pad_token_id = pad_token_id
        self.counters = counters
        self.device = model.get_input_embeddings().weight.device

    def generate(self, requests: Sequence[GenerationRequest], on_done: Callable[[int, list[int]], Any]) -> None:
        """Calls `on_done(index, tokens)` with the generated token ids of each request (stop token included,
        as `generate` returns them) as soon as it stops. Raises NonFiniteLogits at the first request whose
        logits are not finite."""
        import torch

        from evalsuite.engine.fast import onednn, sparse

        finished: set[int] = set()

        def done(index: int, tokens: list[int]) -> None:
            finished.add(index)
            on_done(index, tokens)

        waiting = sorted(range(len(requests)), key=lambda i: -len(requests[i].prompt))
        with sparse.installed(self.model), onednn.installed(self.model), torch.no_grad():
            while waiting:
                try:
                    self._decode(requests, waiting, done)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    release_memory()  # start the unfinished rows again, on half the memory
                    self.counters.oom_retries += 1
                    if self.cache_tokens <= 1 and self.max_batch_tokens <= 1:
                        raise ModelError(
                            "out of memory generating for one prompt; free memory on the device or use a "
                            "smaller --dtype"
                        ) from exc
                    self.cache_tokens = max(1, self.cache_tokens // 2)
                    self.max_batch_tokens = max(1, self.max_batch_tokens // 2)
                waiting = [i for i in waiting if i not in finished]

    def _decode(
        self, requests: Sequence[GenerationRequest], order: list[int], done: Callable[[int, list[int]], Any]
    ) -> None:
        import torch

        from evalsuite.engine.fast.slots import Slots

        longest = max(len(requests[i].prompt) + requests[i].max_new_tokens for i in order)
        # Room for one row's whole length plus as many steps again: the buffers are compacted at most
        # once every that many steps.
        capacity = longest + max(requests[i].max_new_tokens for i in order) + 1
        slots = Slots(max(1, min(len(order), self.cache_tokens // capacity)), capacity, self.device)
        waiting = list(order)
        rows: list[_Row] = []  # by slot
        while waiting or rows:
            if waiting and slots.free:
                self._join(requests, waiting, slots, rows, done)
                if not rows:
                    continue
            feed = torch.tensor([[row.tokens[-1]] for row in rows], dtype=torch.long, device=self.device)
            position = torch.tensor(slots.lengths, dtype=torch.long, device=self.device)[:, None]
            mask = slots.step_mask()
            real = torch.ones((len(rows), 1), dtype=torch.bool)
            with positions.publish(real):
                out = self.model(
                    input_ids=feed,
                    attention_mask=mask,
                    position_ids=position,
                    cache=slots.cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
            slots.stepped()
            self._count(real)
            picked = self._pick(out.logits[:, -1, :], rows)
            for slot in reversed(range(len(rows))):  # from the last: a leaving row takes the last slot
                if rows[slot].add(picked[slot], self.eos):
                    done(rows[slot].index, rows[slot].tokens)
                    slots.leave(slot)
                    rows[slot] = rows[-1]
                    rows.pop()

    def _join(
        self,
        requests: Sequence[GenerationRequest],
        waiting: list[int],
        slots: Any,
        rows: list[_Row],
        done: Callable[[int, list[int]], Any],
    ) -> None:
        """Prefill the next waiting prompts (as many as there are free slots and the pass budget allows,
        at least one) and give the rows that go on a slot each."""
        width = len(requests[waiting[0]].prompt)  # the longest waiting: the pass's width
        count = max(1, min(slots.free, len(waiting), self.max_batch_tokens // max(1, width)))
        group = [waiting.pop(0) for _ in range(count)]
        cache, logits = self._prefill([requests[i].prompt for i in group])
        joining = [_Row(i, requests[i], Stopper(self.tokenizer, requests[i].until), []) for i in group]
        picked = self._pick(logits, joining)
        for j, row in enumerate(joining):
            if row.add(picked[j], self.eos):
                done(row.index, row.tokens)
            else:
                slots.join(cache, j, len(row.request.prompt))
                rows.append(row)

    def _prefill(self, prompts: list[tuple[int, ...]]) -> tuple[Any, Any]:
        """The prompts in one right-padded pass (a single long prompt in pieces of the pass budget: same
        cache, same result); returns its cache (row i's positions are its first len(prompts[i]) columns)
        and each row's next-token logits (rows, vocabulary).

        Right padding needs no attention mask: causal attention already keeps every real position from
        the padding after it, so the attention takes its causal path and skips the upper triangle, and
        nothing reads a padding position. The logits are read at each row's last real position."""
        import torch
        from transformers import DynamicCache

        from evalsuite.engine.fast import sparse

        rows, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((rows, width), self.pad_token_id, dtype=torch.long)
        for i, prompt in enumerate(prompts):
            ids[i, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        lengths = torch.tensor([len(p) for p in prompts])
        columns = torch.arange(width)
        real = columns[None, :] < lengths[:, None]
        last = columns[None, :] == lengths[:, None] - 1  # where the logits are read
        cache = DynamicCache()
        logits: list[Any] = [None] * rows
        chunk = max(1, self.max_batch_tokens // rows)
        for s in range(0, width, chunk):
            part = slice(s, s + chunk)
            ends = [i for i, n in enumerate(lengths.tolist()) if s < n <= s + chunk]
            keep = sorted({int(lengths[i]) - 1 - s for i in ends}) or [0]
            with positions.publish(real[:, part]), sparse.selecting(real[:, part], last[:, part]):
                out = self.model(
                    input_ids=ids[:, part].to(self.device),
                    position_ids=columns[part].expand(rows, -1).to(self.device),
                    cache=cache,
                    use_cache=True,
                    logits_to_keep=torch.tensor(keep, device=self.device),
                )
            for i in ends:
                logits[i] = out.logits[i, keep.index(int(lengths[i]) - 1 - s)]
            self._count(real[:, part])
        return cache, torch.stack(logits)

    def _pick(self, logits: Any, rows: list[_Row]) -> list[int]:
        picked, bad, value = next_tokens(logits)
        if bad is not None:
            raise NonFiniteLogits(rows[bad].index, value, len(rows[bad].tokens))
        return picked

    def _count(self, real: Any) -> None:
        self.counters.positions += int(real.sum())
        self.counters.padded += real.numel()
