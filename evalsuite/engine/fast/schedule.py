"""The order of the fast backend's forward passes over a prefix plan, what each holds and which node caches
it keeps or releases: a function of the token trie and the budget alone, no model (the scorer executes it).

Siblings (the nodes that continue the same prefix) become rows: short ones packed into one row (the
scorer's block-causal mask keeps them apart), long ones a row each. Rows wait on a stack, longest on top,
so the work goes depth first. A pass takes the top row and the rows under it while it holds at most the
budget and its rows stay full; with `mixed`, those rows may continue different prefixes (the scorer pads
the prefixes to the longest), so the short continuations of many documents share one pass: a pass reads
all the model's weights, which costs as much as many positions of work. After a pass, each of its nodes
with children is kept (its prefix and itself) and its children's rows go on top of the stack; a cache is
released after the pass that takes the last row continuing it.

What it guarantees (tests/test_engine_fast_schedule.py checks each on random tries):
- every node is forwarded in exactly one pass, on top of its parent's cache, kept earlier and not yet
  released: the plan's unique-prefix floor, each target scored once;
- a pass of two or more rows holds at most the budget of its time (rows x (longest prefix + widest
  row)); a single row is taken whatever it holds, and the scorer splits it on out-of-memory;
- between passes the caches alive are exactly those a waiting row continues, and they were kept by at
  most `depth` passes (the trie's depth in nodes): the rows each pass leaves lie under those of the
  passes after it, which descend from them, so the shallowest depth per pass's rows rises up the stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from evalsuite.engine.fast.trie import Node, Plan

# Siblings shorter than this share a row: no padding, one copy of the prefix for all. Longer rows would
# spend more on attention than padding costs.
PACK_TOKENS = 256
# A row that would leave its pass's rows less than this full (real positions over the padded width)
# starts the next pass: padding stays under 10%...
MIN_ROW_FILL = 0.9
# ...unless the pass is this small: then the weights read by another pass cost more than the padding.
SMALL_PASS = 512


@dataclass(frozen=True, eq=False)
class Row:
    """Siblings packed one after another, forwarded on top of their parent's cache."""

    nodes: tuple[Node, ...]
    parent: Node | None  # whose cache the row continues; None: the row starts the inputs, no cache

    @property
    def start(self) -> int:
        """The prefix length the row continues: its nodes' first position."""
        return self.parent.end if self.parent is not None else 0

    @property
    def width(self) -> int:
        return sum(len(n.tokens) for n in self.nodes)


@dataclass(frozen=True, eq=False)
class Pass:
    """One forward pass: its rows, the caches to keep after it (for later passes) and those it frees."""

    rows: tuple[Row, ...]
    keep: tuple[Node, ...]  # its nodes with children, in row order: their children's rows continue them
    release: tuple[Node, ...]  # caches no later pass continues: free them once this pass ran

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
        return all(row.parent is self.rows[0].parent for row in self.rows)

    @property
    def held(self) -> int:
        """Positions the pass holds: each row's padded prefix and padded width."""
        return len(self.rows) * (self.prefix + self.width)

    def halves(self) -> tuple[Pass, Pass] | None:
        """Two passes forwarding what this one does, in the same order (a retry after out-of-memory): its
        rows halved, or one packed row unpacked into a row per node; None for a row of a single node. The
        second frees what this one frees."""
        only = self.rows[0]
        rows = self.rows if len(self.rows) > 1 else tuple(Row((n,), only.parent) for n in only.nodes)
        if len(rows) == 1:
            return None
        half = len(rows) // 2
        return _pass(rows[:half], ()), _pass(rows[half:], self.release)


def _pass(rows: tuple[Row, ...], release: tuple[Node, ...]) -> Pass:
    return Pass(rows, tuple(n for row in rows for n in row.nodes if n.children), release)


class Scheduler:
    """Passes over plans within `budget` positions each; the budget may be lowered between passes (after
    an out-of-memory error) and the passes after it hold at most the new one. `pack` is the longest
    packed row (0: a row per node) and `mixed` whether rows of different prefixes may share a pass: both
    need a custom attention mask."""

    def __init__(self, budget: int, pack: int = PACK_TOKENS, mixed: bool = True) -> None:
        self.budget = budget
        self.pack = pack
        self.mixed = mixed

    def passes(self, plan: Plan) -> Iterator[Pass]:
        """The plan's passes in order; each pass's kept nodes' children are scheduled once it is consumed."""
        waiting: list[Row] = []  # a stack: the rows on top are forwarded next
        continuing: dict[int, int] = {}  # id of a kept node: how many waiting rows continue its cache
        roots = (plan.root,) if plan.root.tokens else tuple(plan.root.children.values())
        waiting.extend(self._rows(roots, None))
        while waiting:
            rows = self._take(waiting)
            release: list[Node] = []
            for row in rows:
                if row.parent is not None:
                    continuing[id(row.parent)] -= 1
                    if not continuing[id(row.parent)]:
                        del continuing[id(row.parent)]
                        release.append(row.parent)
            step = _pass(rows, tuple(release))
            yield step
            for node in reversed(step.keep):
                children = self._rows(tuple(node.children.values()), node)
                waiting.extend(children)
                continuing[id(node)] = len(children)

    def _rows(self, nodes: tuple[Node, ...], parent: Node | None) -> list[Row]:
        """Siblings into rows, in stack order (longest last: on top); short ones packed into rows of up to
        `pack` tokens."""
        rows: list[list[Node]] = []
        used = 0
        for node in sorted(nodes, key=lambda n: -len(n.tokens)):
            if rows and used + len(node.tokens) <= self.pack:
                rows[-1].append(node)
                used += len(node.tokens)
            else:
                rows.append([node])
                used = len(node.tokens)
        return [Row(tuple(row), parent) for row in reversed(rows)]

    def _take(self, waiting: list[Row]) -> tuple[Row, ...]:
        """The top row, and the rows under it while the pass stays within the budget and full enough."""
        first = waiting.pop()
        rows = [first]
        prefix, width, real, shared = first.start, first.width, first.width, True
        while waiting:
            row = waiting[-1]
            same = shared and row.parent is first.parent
            count, longest, widest = len(rows) + 1, max(prefix, row.start), max(width, row.width)
            if not (self.mixed or same) or count * (longest + widest) > self.budget:
                break
            if real + row.width < MIN_ROW_FILL * count * widest and count * widest > SMALL_PASS:
                break
            rows.append(waiting.pop())
            prefix, width, real, shared = longest, widest, real + row.width, same
        return tuple(rows)
