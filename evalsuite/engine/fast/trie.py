"""The prefix plan of a benchmark: its model inputs in a compressed token trie, every prefix once.

Each node holds the tokens its inputs share after its parent's (its segment) and the continuation
tokens scored at its positions. Forwarding every segment once, on top of its ancestors' cache,
forwards exactly the number of distinct prefixes of the inputs: the unique-prefix floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from evalsuite.engine.tokenize import TokenRequest


@dataclass(frozen=True)
class Target:
    """A continuation token scored at an absolute position: request `request`'s token `token`."""

    position: int
    token: int
    request: int


@dataclass
class Node:
    start: int  # absolute position of the segment's first token
    tokens: tuple[int, ...]
    children: dict[int, Node] = field(default_factory=dict)  # by the child's first token
    targets: list[Target] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + len(self.tokens)

    def walk(self) -> list[Node]:
        """This node and all below it, parents first."""
        out, stack = [], [self]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(node.children.values())
        return out


@dataclass(frozen=True)
class Plan:
    root: Node
    requests: int  # how many requests the targets refer to


def _common(a: Sequence[int], b: Sequence[int], start: int) -> int:
    end = min(len(a), len(b))
    i = start
    while i < end and a[i] == b[i]:
        i += 1
    return i


def _build(inputs: list[tuple[int, ...]]) -> Node:
    """The trie of sorted, distinct inputs (iterative: a chain of nested inputs can be long)."""
    root = Node(0, ())
    # (lo, hi, start, parent, first token): inputs[lo:hi] share their first `start` tokens.
    todo: list[tuple[int, int, int, Node | None, int]] = [(0, len(inputs), 0, None, -1)]
    while todo:
        lo, hi, start, parent, first = todo.pop()
        # Sorted: what the first and the last share, all share.
        end = _common(inputs[lo], inputs[hi - 1], start)
        node = Node(start, inputs[lo][start:end])
        if parent is None:
            root = node
        else:
            parent.children[first] = node
        i = lo + (len(inputs[lo]) == end)  # an input that ends here sorts first and has no child
        while i < hi:
            j, token = i, inputs[i][end]
            while j < hi and inputs[j][end] == token:
                j += 1
            todo.append((i, j, end, node, token))
            i = j
    return root


def build_plan(requests: Sequence[TokenRequest]) -> Plan:
    """The trie of the requests' inputs, with each continuation token attached where it is scored."""
    inputs = sorted({r.input for r in requests})
    root = _build(inputs) if inputs else Node(0, ())
    for index, req in enumerate(requests):
        full, node = req.context + req.continuation, root
        for position in range(len(req.context) - 1, len(full) - 1):
            while position >= node.end:
                node = node.children[full[node.end]]
            node.targets.append(Target(position, full[position + 1], index))
    return Plan(root, len(requests))


def unique_prefix_floor(inputs: Sequence[Sequence[int]]) -> int:
    """Distinct non-empty prefixes of the inputs: in sorted order, each input adds what it does not
    share with the one before it."""
    total = 0
    previous: tuple[int, ...] = ()
    for current in sorted({tuple(x) for x in inputs}):
        total += len(current) - _common(previous, current, 0)
        previous = current
    return total
