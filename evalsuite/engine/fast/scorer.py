"""Log-likelihoods over a prefix plan: every segment forwarded once, on top of its ancestors' KV cache.

Siblings (the nodes that continue the same prefix) are forwarded on copies of their parent's cache:
short ones packed into one row, each seeing the prefix and itself only (a block-causal mask, with
positions that restart after the prefix), long ones a row each, right-padded. A node with children
keeps its span of the cache for them. Rows wait on a stack, so the work goes depth first and only the
caches of the rows waiting (and of their ancestors) are alive. A pass takes the rows on top of the
stack, which may continue different prefixes: each row then sees its own prefix, the prefixes padded
to the longest and the padding masked. So the short continuations of many documents (the choices of
each question) share one pass rather than one pass each: a pass reads all the model's weights, which
costs as much as many positions of work. Logits are computed only at the positions scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evalsuite.engine import positions
from evalsuite.engine.fast import sparse
from evalsuite.engine.fast.budget import is_out_of_memory, release_memory
from evalsuite.engine.fast.logprobs import continuation_sum, token_logprobs
from evalsuite.engine.fast.trie import Node, Plan
from evalsuite.errors import ModelError

Past = list[tuple[Any, Any]]  # per layer: keys, values of one row, (1, kv heads, length, head dim)
# Siblings shorter than this share a row (a custom mask keeps them apart): no padding, one copy of the
# prefix for all. Longer rows would spend more on attention than padding costs.
PACK_TOKENS = 256
# A row that would leave its pass's rows less than this full (real positions over the padded width)
# starts the next pass: padding stays under 10%...
MIN_ROW_FILL = 0.9
# ...unless the pass is this small: then the weights read by another pass cost more than the padding.
SMALL_PASS = 512


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


@dataclass(frozen=True)
class _Row:
    """Siblings packed one after another, forwarded on top of their parent's cache (`start` positions)."""

    nodes: tuple[Node, ...]
    past: Past | None
    start: int

    @property
    def width(self) -> int:
        return sum(len(n.tokens) for n in self.nodes)


@dataclass(frozen=True)
class _Batch:
    rows: tuple[_Row, ...]

    @property
    def width(self) -> int:
        return max(row.width for row in self.rows)

    @property
    def prefix(self) -> int:
        """The prefix length every row's cache is padded to."""
        return max(row.start for row in self.rows)

    @property
    def shared(self) -> bool:
        """All rows continue the same prefix (one cache, viewed once per row: no copy, no padding)."""
        first = self.rows[0]
        return all(row.past is first.past and row.start == first.start for row in self.rows)

    @property
    def held(self) -> int:
        """Positions the pass holds: each row's padded prefix and padded width."""
        return len(self.rows) * (self.prefix + self.width)


class PrefixScorer:
    def __init__(self, model: Any, max_batch_tokens: int, pad_token_id: int, counters: Counters) -> None:
        self.model = model
        self.max_batch_tokens = max_batch_tokens
        self.single_row_chunk: int | None = None  # set after an out-of-memory error on one row
        self.pad_token_id = pad_token_id
        self.counters = counters
        self.device = model.get_input_embeddings().weight.device
        # Packing siblings into one row, and rows of different prefixes in one pass, need a custom
        # attention mask, which eager and SDPA attention take.
        self.mask_kind = getattr(model.config, "_attn_implementation", None)
        self.masks = self.mask_kind in ("sdpa", "eager")
        self.pack = PACK_TOKENS if self.masks else 0

    def score(self, plan: Plan, on_done: Callable[[int, float, bool], None]) -> None:
        """Calls `on_done(request, sum of log-probabilities, whether every token is the greedy one)` for
        each request of the plan, as soon as its last continuation token is scored."""
        remaining = [0] * plan.requests
        for node in plan.root.walk():
            for target in node.targets:
                remaining[target.request] += 1
        parts: list[list[tuple[int, float]]] = [[] for _ in range(plan.requests)]
        scores = Scores(parts, [True] * plan.requests, remaining, on_done)
        roots = (plan.root,) if plan.root.tokens else tuple(plan.root.children.values())
        waiting: list[_Row] = []  # a stack: the rows on top are forwarded next
        self._push(waiting, roots, None, 0)
        with sparse.installed(self.model):
            while waiting:
                batch = self._take(waiting)
                for parent, past in reversed(self._run(batch, scores)):
                    self._push(waiting, tuple(parent.children.values()), past, parent.end)

    def _push(self, waiting: list[_Row], nodes: tuple[Node, ...], past: Past | None, start: int) -> None:
        """Siblings into rows, longest first on top; short ones packed into rows of up to PACK_TOKENS."""
        rows: list[list[Node]] = []
        used = 0
        for node in sorted(nodes, key=lambda n: -len(n.tokens)):
            if rows and used + len(node.tokens) <= self.pack:
                rows[-1].append(node)
                used += len(node.tokens)
            else:
                rows.append([node])
                used = len(node.tokens)
        waiting.extend(_Row(tuple(row), past, start) for row in reversed(rows))

    def _take(self, waiting: list[_Row]) -> _Batch:
        """The top row, and the rows under it while the pass stays within the budget and full enough."""
        first = waiting.pop()
        rows = [first]
        prefix, width, real, shared = first.start, first.width, first.width, True
        while waiting:
            row = waiting[-1]
            same = shared and row.past is first.past and row.start == first.start
            count, longest, widest = len(rows) + 1, max(prefix, row.start), max(width, row.width)
            if not (self.masks or same) or count * (longest + widest) > self.max_batch_tokens:
                break
            if real + row.width < MIN_ROW_FILL * count * widest and count * widest > SMALL_PASS:
                break
            rows.append(waiting.pop())
            prefix, width, real, shared = longest, widest, real + row.width, same
        return _Batch(tuple(rows))

    def _run(self, batch: _Batch, scores: Scores) -> list[tuple[Node, Past]]:
        """Forward a batch; on out-of-memory, halve it (unpack a row, or chunk a single node) and lower the budget."""
        while True:
            try:
                return self._forward(batch, scores)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                release_memory()
                self.counters.oom_retries += 1
                self.max_batch_tokens = max(1, min(self.max_batch_tokens, batch.held) // 2)
                only = batch.rows[0]
                rows = (
                    batch.rows if len(batch.rows) > 1 else tuple(_Row((n,), only.past, only.start) for n in only.nodes)
                )
                if len(rows) > 1:
                    half = len(rows) // 2
                    return self._run(_Batch(rows[:half]), scores) + self._run(_Batch(rows[half:]), scores)
                chunk = self.single_row_chunk or batch.width
                if chunk <= 1:
                    raise ModelError(
                        f"out of memory forwarding a single token after a prefix of {only.start}; "
                        "free memory on the device or use a smaller --dtype"
                    ) from exc
                self.single_row_chunk = chunk // 2

    def _forward(self, batch: _Batch, scores: Scores) -> list[tuple[Node, Past]]:
        import torch
        from transformers import DynamicCache

        prefix, shared = batch.prefix, batch.shared
        rows, width = len(batch.rows), batch.width
        ids = torch.full((rows, width), self.pad_token_id, dtype=torch.long)
        real = torch.zeros((rows, width), dtype=torch.bool)
        keep = torch.zeros((rows, width), dtype=torch.bool)
        position = torch.zeros((rows, width), dtype=torch.long)
        placed: list[tuple[int, int, Node]] = []  # row, offset in the row, node
        for i, row in enumerate(batch.rows):
            position[i] = row.start
            offset = 0
            for node in row.nodes:
                n = len(node.tokens)
                span = slice(offset, offset + n)
                ids[i, span] = torch.tensor(node.tokens, dtype=torch.long)
                real[i, span] = True
                position[i, span] = torch.arange(node.start, node.start + n)
                for target in node.targets:
                    keep[i, offset + target.position - node.start] = True
                placed.append((i, offset, node))
                offset += n
        packed = any(len(row.nodes) > 1 for row in batch.rows)
        allowed = self._allowed(batch, placed) if packed or not shared else None
        cache = DynamicCache(ddp_cache_data=self._past(batch)) if prefix else DynamicCache()
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
        children = [
            (node, self._row_past(cache, i, batch, offset, node)) for i, offset, node in placed if node.children
        ]
        logits = torch.cat(chunks)
        picked = self._picked(placed, keep, logits)
        self.counters.positions += int(real.sum())
        self.counters.padded += rows * width
        _add(picked, scores, logits.dtype)
        return children

    @staticmethod
    def _past(batch: _Batch) -> Past:
        """Each row's prefix cache, in one (rows, kv heads, prefix, head dim) tensor per layer: one prefix
        viewed once per row, or the rows' own prefixes, padded at the end to the longest."""
        rows, prefix = len(batch.rows), batch.prefix
        first = next(row.past for row in batch.rows if row.past)
        if batch.shared:
            return [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in first]
        out = []
        for layer, (k0, v0) in enumerate(first):
            keys = k0.new_zeros((rows, k0.shape[1], prefix, k0.shape[3]))
            values = v0.new_zeros((rows, v0.shape[1], prefix, v0.shape[3]))
            for i, row in enumerate(batch.rows):
                if row.past:
                    keys[i, :, : row.start] = row.past[layer][0][0]
                    values[i, :, : row.start] = row.past[layer][1][0]
            out.append((keys, values))
        return out

    @staticmethod
    def _allowed(batch: _Batch, placed: list[tuple[int, int, Node]]) -> Any:
        """(rows, width, prefix + width): each node sees its row's own prefix and itself, causally."""
        import torch

        prefix, width = batch.prefix, batch.width
        allowed = torch.zeros((len(batch.rows), width, prefix + width), dtype=torch.bool)
        for i, row in enumerate(batch.rows):
            allowed[i, :, : row.start] = True
        ends = [0] * len(batch.rows)
        for i, offset, node in placed:
            n = len(node.tokens)
            causal = torch.ones(n, n, dtype=torch.bool).tril()
            allowed[i, offset : offset + n, prefix + offset : prefix + offset + n] = causal
            ends[i] = offset + n
        for i, end in enumerate(ends):
            pad = torch.arange(end, width)
            allowed[i, pad, prefix + pad] = True  # padding sees itself: no empty softmax
        return allowed

    def _mask(self, allowed: Any) -> Any:
        """The attention implementation's form: SDPA takes booleans, eager attention an additive float mask."""
        import torch

        if self.mask_kind == "sdpa":
            return allowed.to(self.device)
        dtype = self.model.dtype
        return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min).to(self.device)

    @staticmethod
    def _row_past(cache: Any, i: int, batch: _Batch, offset: int, node: Node) -> Past:
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
    def _picked(placed: list[tuple[int, int, Node]], keep: Any, logits: Any) -> list[tuple[int, int, float, bool]]:
        """(request, position, log-probability, whether greedy) of each scored token, with v1's arithmetic
        in the logits' dtype (evalsuite.engine.fast.logprobs)."""
        import torch

        # `logits` has one row per kept position, in row-major order of `keep` (chunks of one row keep it).
        flat = torch.full(keep.shape, -1, dtype=torch.long)
        flat[keep] = torch.arange(int(keep.sum()))
        where, tokens, scored = [], [], []
        for i, offset, node in placed:
            for target in node.targets:
                where.append(int(flat[i, offset + target.position - node.start]))
                tokens.append(target.token)
                scored.append((target.request, target.position))
        if not where:
            return []
        picked, greedy = token_logprobs(logits[torch.tensor(where, device=logits.device)], tokens)
        return [(r, p, lp, top) for (r, p), lp, top in zip(scored, picked, greedy, strict=True)]


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
