"""Log-likelihoods over a prefix plan: every segment forwarded once, on top of its ancestors' KV cache.

Siblings (the nodes that continue the same prefix) are forwarded together on copies of their parent's
cache: short ones packed into one row, each seeing the prefix and itself only (a block-causal mask, with
positions that restart after the prefix), long ones a row each, right-padded. A node with children
keeps its span of the cache for them. Depth first, so only the caches on the current path are alive.
Logits are computed only at the positions scored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from evalsuite.engine import positions
from evalsuite.engine.fast.budget import is_out_of_memory, release_memory
from evalsuite.engine.fast.trie import Node, Plan
from evalsuite.errors import ModelError

Past = list[tuple[Any, Any]]  # per layer: keys, values of one row, (1, kv heads, length, head dim)
# Siblings shorter than this share a row (a custom mask keeps them apart): no padding, one copy of the
# prefix for all. Longer rows would spend more on attention than padding costs.
PACK_TOKENS = 256
# A row shorter than this share of its batch's longest starts the next batch: padding stays under 10%.
MIN_ROW_FILL = 0.9


@dataclass
class Counters:
    """What the backend ran through the model; `positions` counts real tokens, `padded` includes padding."""

    positions: int = 0
    padded: int = 0
    oom_retries: int = 0


@dataclass
class Scores:
    logprob: list[float]
    greedy: list[bool]


@dataclass(frozen=True)
class _Work:
    nodes: tuple[Node, ...]
    past: Past | None
    start: int


Row = tuple[Node, ...]  # siblings packed one after another into one row


@dataclass(frozen=True)
class _Batch:
    rows: tuple[Row, ...]
    past: Past | None
    start: int

    @property
    def width(self) -> int:
        return max(sum(len(n.tokens) for n in row) for row in self.rows)


class PrefixScorer:
    def __init__(self, model: Any, max_batch_tokens: int, pad_token_id: int, counters: Counters) -> None:
        self.model = model
        self.max_batch_tokens = max_batch_tokens
        self.single_row_chunk: int | None = None  # set after an out-of-memory error on one row
        self.pad_token_id = pad_token_id
        self.counters = counters
        self.device = model.get_input_embeddings().weight.device
        # Packing siblings into one row needs a custom attention mask, which eager and SDPA attention take.
        self.mask_kind = getattr(model.config, "_attn_implementation", None)
        self.pack = PACK_TOKENS if self.mask_kind in ("sdpa", "eager") else 0

    def score(self, plan: Plan) -> tuple[list[float], list[bool]]:
        """(sum of log-probabilities, whether every token is the greedy one) per request of the plan."""
        scores = Scores([0.0] * plan.requests, [True] * plan.requests)
        roots = (plan.root,) if plan.root.tokens else tuple(plan.root.children.values())
        # A stack of batch iterators: a batch's children are finished before its next sibling batch runs.
        stack: list[Iterator[_Batch]] = [self._batches(_Work(roots, None, 0))]
        while stack:
            batch = next(stack[-1], None)
            if batch is None:
                stack.pop()
                continue
            children = self._run(batch, scores)
            stack.extend(self._batches(work) for work in reversed(children))
        return scores.logprob, scores.greedy

    def _batches(self, work: _Work) -> Iterator[_Batch]:
        """Siblings longest first; short ones packed into rows of up to PACK_TOKENS; as many rows per
        batch as the budget holds (each row holds the prefix too)."""
        nodes = sorted(work.nodes, key=lambda n: -len(n.tokens))
        rows: list[list[Node]] = []
        used = 0
        for node in nodes:
            if rows and used + len(node.tokens) <= self.pack:
                rows[-1].append(node)
                used += len(node.tokens)
            else:
                rows.append([node])
                used = len(node.tokens)
        lengths = [sum(len(n.tokens) for n in row) for row in rows]
        i = 0
        while i < len(rows):
            width = lengths[i]
            most = max(1, self.max_batch_tokens // (work.start + width))
            count = 1
            while count < most and i + count < len(rows) and lengths[i + count] >= MIN_ROW_FILL * width:
                count += 1
            yield _Batch(tuple(tuple(r) for r in rows[i : i + count]), work.past, work.start)
            i += count

    def _run(self, batch: _Batch, scores: Scores) -> list[_Work]:
        """Forward a batch; on out-of-memory, halve it (unpack a row, or chunk a single node) and lower the budget."""
        while True:
            try:
                return self._forward(batch, scores)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                release_memory()
                self.counters.oom_retries += 1
                held = len(batch.rows) * (batch.start + batch.width)
                self.max_batch_tokens = max(1, min(self.max_batch_tokens, held) // 2)
                rows = batch.rows if len(batch.rows) > 1 else tuple((n,) for n in batch.rows[0])
                if len(rows) > 1:
                    half = len(rows) // 2
                    return self._run(_Batch(rows[:half], batch.past, batch.start), scores) + self._run(
                        _Batch(rows[half:], batch.past, batch.start), scores
                    )
                chunk = self.single_row_chunk or batch.width
                if chunk <= 1:
                    raise ModelError(
                        f"out of memory forwarding a single token after a prefix of {batch.start}; "
                        "free memory on the device or use a smaller --dtype"
                    ) from exc
                self.single_row_chunk = chunk // 2

    def _forward(self, batch: _Batch, scores: Scores) -> list[_Work]:
        import torch
        from transformers import DynamicCache

        start, past = batch.start, batch.past
        rows, width = len(batch.rows), batch.width
        ids = torch.full((rows, width), self.pad_token_id, dtype=torch.long)
        real = torch.zeros((rows, width), dtype=torch.bool)
        keep = torch.zeros((rows, width), dtype=torch.bool)
        position = torch.full((rows, width), start, dtype=torch.long)
        placed: list[tuple[int, int, Node]] = []  # row, offset in the row, node
        for i, row in enumerate(batch.rows):
            offset = 0
            for node in row:
                n = len(node.tokens)
                span = slice(offset, offset + n)
                ids[i, span] = torch.tensor(node.tokens, dtype=torch.long)
                real[i, span] = True
                position[i, span] = torch.arange(start, start + n)
                for target in node.targets:
                    keep[i, offset + target.position - start] = True
                placed.append((i, offset, node))
                offset += n
        packed = any(len(row) > 1 for row in batch.rows)
        allowed = self._allowed(batch, placed, width) if packed else None
        cache = (
            DynamicCache(ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in past])
            if past
            else DynamicCache()
        )
        # One row may be forwarded in chunks (after an out-of-memory error): same cache, same result.
        chunk = width if rows > 1 or self.single_row_chunk is None else self.single_row_chunk
        logits = []
        with torch.no_grad():
            for s in range(0, width, chunk):
                part = slice(s, s + chunk)
                extra: dict[str, Any] = {}
                if allowed is not None:
                    extra["attention_mask"] = self._mask(allowed[:, None, part, : start + s + chunk])
                    extra["position_ids"] = position[:, part].to(self.device)
                with positions.publish(real[:, part]):
                    out = self.model(
                        input_ids=ids[:, part].to(self.device),
                        cache=cache,
                        use_cache=True,
                        logits_to_keep=keep[:, part].to(self.device),
                        **extra,
                    )
                logits.append(out.logits)
        self.counters.positions += int(real.sum())
        self.counters.padded += rows * width
        self._collect(placed, start, keep, torch.cat(logits), scores)
        return [
            _Work(tuple(node.children.values()), self._row_past(cache, i, start, offset, node), node.end)
            for i, offset, node in placed
            if node.children
        ]

    @staticmethod
    def _allowed(batch: _Batch, placed: list[tuple[int, int, Node]], width: int) -> Any:
        """(rows, width, prefix + width): each packed node sees the prefix and itself, causally."""
        import torch

        start = batch.start
        allowed = torch.zeros((len(batch.rows), width, start + width), dtype=torch.bool)
        allowed[:, :, :start] = True
        ends = [0] * len(batch.rows)
        for i, offset, node in placed:
            n = len(node.tokens)
            causal = torch.ones(n, n, dtype=torch.bool).tril()
            allowed[i, offset : offset + n, start + offset : start + offset + n] = causal
            ends[i] = offset + n
        for i, end in enumerate(ends):
            pad = torch.arange(end, width)
            allowed[i, pad, start + pad] = True  # padding sees itself: no empty softmax
        return allowed

    def _mask(self, allowed: Any) -> Any:
        """The attention implementation's form: SDPA takes booleans, eager attention an additive float mask."""
        import torch

        if self.mask_kind == "sdpa":
            return allowed.to(self.device)
        dtype = self.model.dtype
        return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min).to(self.device)

    @staticmethod
    def _row_past(cache: Any, row: int, start: int, offset: int, node: Node) -> Past:
        """The node's cache for its children: the prefix, then its own span of the packed row."""
        import torch

        span = slice(start + offset, start + offset + len(node.tokens))
        return [
            (
                torch.cat([layer.keys[row : row + 1, :, :start], layer.keys[row : row + 1, :, span]], dim=2),
                torch.cat([layer.values[row : row + 1, :, :start], layer.values[row : row + 1, :, span]], dim=2),
            )
            for layer in cache.layers
        ]

    def _collect(self, placed: list[tuple[int, int, Node]], start: int, keep: Any, logits: Any, scores: Scores) -> None:
        """Add each scored token's log-probability to its request (in float32, as the exact path)."""
        import torch

        # `logits` has one row per kept position, in row-major order of `keep` (chunks of one row keep it).
        flat = torch.full(keep.shape, -1, dtype=torch.long)
        flat[keep] = torch.arange(int(keep.sum()))
        where, tokens, requests = [], [], []
        for i, offset, node in placed:
            for target in node.targets:
                where.append(int(flat[i, offset + target.position - start]))
                tokens.append(target.token)
                requests.append(target.request)
        if not where:
            return
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        index, token = torch.tensor(where), torch.tensor(tokens)
        picked = logprobs[index, token].tolist()
        greedy = (logprobs[index].argmax(dim=-1) == token).tolist()
        for request, lp, top in zip(requests, picked, greedy, strict=True):
            scores.logprob[request] += lp
            scores.greedy[request] = scores.greedy[request] and top
