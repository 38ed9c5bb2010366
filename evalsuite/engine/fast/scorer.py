"""Log-likelihoods over a prefix plan: the passes of its schedule (evalsuite.engine.fast.schedule) run
through the model, every segment once, on top of its parent's KV cache.

A row's nodes see its prefix and themselves only: packed siblings through a block-causal mask, with
positions that restart after the prefix. Rows of a pass that continue different prefixes each see their
own, the prefixes padded to the longest and the padding masked. A node the schedule keeps leaves its
prefix and its span of the cache for its children's rows; a cache it releases is freed after the pass.
Logits are computed only at the positions scored. On out-of-memory a pass runs again as its halves (a
single row in chunks) and the schedule's budget is halved for the passes after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evalsuite.engine.fast import onednn, schedule, sparse
from evalsuite.engine.fast.budget import is_out_of_memory, release_memory
from evalsuite.engine.fast.logprobs import continuation_sum, token_logprobs
from evalsuite.engine.fast.schedule import Pass
from evalsuite.engine.fast.trie import Node, Plan, Target
from evalsuite.errors import ModelError
from evalsuite.moe import positions

Past = list[tuple[Any, Any]]  # per layer: keys, values of one row, (1, kv heads, length, head dim)


@dataclass
class Counters:
    """What the backend ran through the model; `positions` counts real tokens, `padded` includes padding."""

    positions: int = 0
    padded: int = 0
    oom_retries: int = 0


@dataclass
class Scores:
    parts: list[list[tuple[int, float]]]  # per request: (position, log-probability) of each scored token
    greedy: list[bool]
    remaining: list[int]  # continuation tokens not yet scored, per request
    on_done: Callable[[int, float, bool], None]  # called as each request's last token is scored


class PrefixScorer:
    def __init__(self, model: Any, max_batch_tokens: int, pad_token_id: int, counters: Counters) -> None:
        self.model = model
        self.single_row_chunk: int | None = None  # set after an out-of-memory error on one row
        self.pad_token_id = pad_token_id
        self.counters = counters
        self.device = model.get_input_embeddings().weight.device
        # Packing siblings into one row, and rows of different prefixes in one pass, need a custom
        # attention mask, which eager and SDPA attention take.
        self.mask_kind = getattr(model.config, "_attn_implementation", None)
        self.masks = self.mask_kind in ("sdpa", "eager")
        pack = schedule.PACK_TOKENS if self.masks else 0
        self.scheduler = schedule.Scheduler(max_batch_tokens, pack=pack, mixed=self.masks)

    @property
    def max_batch_tokens(self) -> int:
        """The budget of the passes, lowered by out-of-memory errors."""
        return self.scheduler.budget

    def score(self, plan: Plan, on_done: Callable[[int, float, bool], None]) -> None:
        """Calls `on_done(request, sum of log-probabilities, whether every token is the greedy one)` for
        each request of the plan, as soon as its last continuation token is scored."""
        remaining = [0] * plan.requests
        for node in plan.root.walk():
            for target in node.targets:
                remaining[target.request] += 1
        parts: list[list[tuple[int, float]]] = [[] for _ in range(plan.requests)]
        scores = Scores(parts, [True] * plan.requests, remaining, on_done)
        caches: dict[int, Past] = {}  # by id of the node: its prefix and itself, for its children's rows
        with sparse.installed(self.model), onednn.installed(self.model):
            for step in self.scheduler.passes(plan):
                caches.update(self._run(step, caches, scores))
                for node in step.release:
                    del caches[id(node)]

    def _run(self, batch: Pass, caches: dict[int, Past], scores: Scores) -> dict[int, Past]:
        """Forward a pass; on out-of-memory, lower the budget and run its halves (or chunk a single node)."""
        while True:
            try:
                return self._forward(batch, caches, scores)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                release_memory()
                self.counters.oom_retries += 1
                self.scheduler.budget = max(1, min(self.scheduler.budget, batch.held) // 2)
                halves = batch.halves()
                if halves is not None:
                    first, second = halves
                    return self._run(first, caches, scores) | self._run(second, caches, scores)
                chunk = self.single_row_chunk or batch.width
                if chunk <= 1:
                    raise ModelError(
                        f"out of memory forwarding a single token after a prefix of {batch.prefix}; "
                        "free memory on the device or use a smaller --dtype"
                    ) from exc
                self.single_row_chunk = chunk // 2

    def _forward(self, batch: Pass, caches: dict[int, Past], scores: Scores) -> dict[int, Past]:
        import torch
        from transformers import DynamicCache

        prefix, shared = batch.prefix, batch.shared
        rows, width = len(batch.rows), batch.width
        layout = _Layout(batch, self.pad_token_id)
        ids = torch.tensor(layout.ids, dtype=torch.long)
        real = torch.tensor(layout.real, dtype=torch.bool)
        keep = torch.tensor(layout.keep, dtype=torch.bool)
        position = torch.tensor(layout.position, dtype=torch.long)
        placed = layout.placed
        packed = any(len(row.nodes) > 1 for row in batch.rows)
        allowed = self._allowed(batch, layout) if packed or not shared else None
        cache = DynamicCache(ddp_cache_data=self._past(batch, caches)) if prefix else DynamicCache()
        # One row may be forwarded in chunks (after an out-of-memory error): same cache, same result.
        chunk = width if rows > 1 or self.single_row_chunk is None else self.single_row_chunk
        chunks = []
        with torch.no_grad():
            for s in range(0, width, chunk):
                part = slice(s, s + chunk)
                extra: dict[str, Any] = {}
                if allowed is not None:
                    extra["attention_mask"] = self._mask(allowed[:, None, part, : prefix + s + chunk])
                    extra["position_ids"] = position[:, part].to(self.device)
                kept = keep[:, part].to(self.device)
                with positions.publish(real[:, part]), sparse.selecting(real[:, part], keep[:, part]):
                    out = self.model(
                        input_ids=ids[:, part].to(self.device),
                        cache=cache,
                        use_cache=True,
                        logits_to_keep=kept,
                        **extra,
                    )
                chunks.append(out.logits)
        # Everything that can run out of memory comes before the scores change: a retry must not add twice.
        held = {id(node) for node in batch.keep}
        children = {
            id(node): self._row_past(cache, i, batch, offset, node) for i, offset, node in placed if id(node) in held
        }
        logits = torch.cat(chunks)
        picked = self._picked(layout, logits)
        self.counters.positions += int(real.sum())
        self.counters.padded += rows * width
        _add(picked, scores, logits.dtype)
        return children

    @staticmethod
    def _past(batch: Pass, caches: dict[int, Past]) -> Past:
        """Each row's prefix cache, in one (rows, kv heads, prefix, head dim) tensor per layer: one prefix
        viewed once per row, or the rows' own prefixes, padded at the end to the longest."""
        rows, prefix = len(batch.rows), batch.prefix
        pasts = [caches[id(row.parent)] if row.parent is not None else None for row in batch.rows]
        first = next(past for past in pasts if past)
        if batch.shared:
            return [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in first]
        out = []
        for layer, (k0, v0) in enumerate(first):
            keys = k0.new_zeros((rows, k0.shape[1], prefix, k0.shape[3]))
            values = v0.new_zeros((rows, v0.shape[1], prefix, v0.shape[3]))
            for i, (row, past) in enumerate(zip(batch.rows, pasts, strict=True)):
                if past:
                    keys[i, :, : row.start] = past[layer][0][0]
                    values[i, :, : row.start] = past[layer][1][0]
            out.append((keys, values))
        return out

    @staticmethod
    def _allowed(batch: Pass, layout: _Layout) -> Any:
        """(rows, width, prefix + width): each node sees its row's own prefix and itself, causally (and a
        padding position itself only: no empty softmax)."""
        import torch

        prefix, width = batch.prefix, batch.width
        segment = torch.tensor(layout.segment, dtype=torch.long)
        column = torch.arange(width)
        own = (segment[:, :, None] == segment[:, None, :]) & (column[None, :, None] >= column[None, None, :])
        starts = torch.tensor([row.start for row in batch.rows], dtype=torch.long)
        seen = (torch.arange(prefix)[None, :] < starts[:, None])[:, None, :].expand(-1, width, -1)
        return torch.cat([seen, own], dim=2)

    def _mask(self, allowed: Any) -> Any:
        """The attention implementation's form: SDPA takes booleans, eager attention an additive float mask."""
        import torch

        if self.mask_kind == "sdpa":
            return allowed.to(self.device)
        dtype = self.model.dtype
        return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min).to(self.device)

    @staticmethod
    def _row_past(cache: Any, i: int, batch: Pass, offset: int, node: Node) -> Past:
        """The node's cache for its children: its row's prefix, then its own span of the row."""
        import torch

        start = batch.rows[i].start
        span = slice(batch.prefix + offset, batch.prefix + offset + len(node.tokens))
        return [
            (
                torch.cat([layer.keys[i : i + 1, :, :start], layer.keys[i : i + 1, :, span]], dim=2),
                torch.cat([layer.values[i : i + 1, :, :start], layer.values[i : i + 1, :, span]], dim=2),
            )
            for layer in cache.layers
        ]

    @staticmethod
    def _picked(layout: _Layout, logits: Any) -> list[tuple[int, int, float, bool]]:
        """(request, position, log-probability, whether greedy) of each scored token, with v1's arithmetic
        in the logits' dtype (evalsuite.engine.fast.logprobs)."""
        import torch

        if not layout.targets:
            return []
        # `logits` has one row per kept position, in row-major order of `keep` (chunks of one row keep it).
        order = {at: k for k, at in enumerate(sorted({(i, column) for i, column, _ in layout.targets}))}
        where = torch.tensor([order[(i, column)] for i, column, _ in layout.targets], device=logits.device)
        picked, greedy = token_logprobs(logits[where], [t.token for _, _, t in layout.targets])
        return [
            (t.request, t.position, lp, top) for (_, _, t), lp, top in zip(layout.targets, picked, greedy, strict=True)
        ]


class _Layout:
    """A pass's rows as lists (rows, width), built in Python and made tensors once: the token ids, real
    positions, kept (scored) positions, position ids and, per position, its node's number in the row
    (a padding position its own negative number, so that it sees only itself)."""

    def __init__(self, batch: Pass, pad_token_id: int) -> None:
        width = batch.width
        self.ids: list[list[int]] = []
        self.real: list[list[bool]] = []
        self.keep: list[list[bool]] = []
        self.position: list[list[int]] = []
        self.segment: list[list[int]] = []
        self.placed: list[tuple[int, int, Node]] = []  # row, offset in the row, node
        self.targets: list[tuple[int, int, Target]] = []  # row, column, the token scored there
        for i, row in enumerate(batch.rows):
            ids: list[int] = []
            position: list[int] = []
            segment: list[int] = []
            keep = [False] * width
            for k, node in enumerate(row.nodes):
                offset = len(ids)
                ids.extend(node.tokens)
                position.extend(range(node.start, node.end))
                segment.extend([k] * len(node.tokens))
                for target in node.targets:
                    column = offset + target.position - node.start
                    keep[column] = True
                    self.targets.append((i, column, target))
                self.placed.append((i, offset, node))
            pad = width - len(ids)
            self.real.append([True] * len(ids) + [False] * pad)
            self.ids.append(ids + [pad_token_id] * pad)
            self.position.append(position + [row.start] * pad)
            self.segment.append(segment + list(range(-1, -pad - 1, -1)))
            self.keep.append(keep)


def _add(picked: list[tuple[int, int, float, bool]], scores: Scores, dtype: Any) -> None:
    """Add each scored token to its request; a request whose last token this was is done: its
    log-probabilities are summed in token order, in the logits' dtype, as v1 summed them."""
    for request, position, lp, top in picked:
        scores.parts[request].append((position, lp))
        scores.greedy[request] = scores.greedy[request] and top
        scores.remaining[request] -= 1
        if scores.remaining[request] == 0:
            values = [value for _, value in sorted(scores.parts[request])]
            scores.on_done(request, continuation_sum(values, dtype), scores.greedy[request])
