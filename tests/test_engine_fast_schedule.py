"""The fast backend's schedule without a model: over many seeded random tries and budgets (lowered
between passes as out-of-memory errors lower them), every target is scored once, every node forwarded
once on its parent's live cache (the unique-prefix floor), no pass of several rows holds more than the
budget, caches are freed after their last use and those alive were kept by at most depth - 1 passes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from evalsuite.engine.fast.schedule import Pass, Scheduler
from evalsuite.engine.fast.trie import Node, Plan, build_plan
from evalsuite.engine.tokenize import TokenRequest

SEEDS = range(150)


@dataclass
class Case:
    requests: list[TokenRequest]
    plan: Plan
    scheduler: Scheduler
    lower_at: set[int]  # passes after which the budget is halved, as the scorer does on out-of-memory


@dataclass
class Trace:
    passes: list[Pass] = field(default_factory=list)
    budgets: list[int] = field(default_factory=list)  # in force when each pass was taken


def _tokens(rng: random.Random, vocab: int, longest: int) -> tuple[int, ...]:
    return tuple(rng.randrange(vocab) for _ in range(rng.randint(1, longest)))


def _case(seed: int) -> Case:
    """Documents sharing few-shot prefixes, each with a few continuations; a small vocabulary makes
    prefixes shared by chance too, and a long context now and then makes rows wider than a pack."""
    rng = random.Random(seed)
    vocab = rng.choice((2, 3, 50))
    shots = [() if rng.random() < 0.2 else _tokens(rng, vocab, 40) for _ in range(rng.randint(1, 3))]
    requests = []
    for _ in range(rng.randint(1, 20)):
        context = rng.choice(shots) + _tokens(rng, vocab, 300 if rng.random() < 0.1 else 12)
        requests += [TokenRequest(context, _tokens(rng, vocab, 6)) for _ in range(rng.randint(1, 4))]
    scheduler = Scheduler(rng.choice((1, 8, 40, 200, 4096)), pack=rng.choice((0, 6, 256)), mixed=rng.random() < 0.7)
    lower_at = {i for i in range(200) if rng.random() < 0.1} if rng.random() < 0.3 else set()
    return Case(requests, build_plan(requests), scheduler, lower_at)


def _run(case: Case) -> Trace:
    """Consume the schedule as the scorer does, lowering the budget where the case says."""
    trace = Trace()
    for i, step in enumerate(case.scheduler.passes(case.plan)):
        trace.passes.append(step)
        trace.budgets.append(case.scheduler.budget)
        if i in case.lower_at:
            case.scheduler.budget = max(1, min(case.scheduler.budget, step.held) // 2)
    return trace


def _forwarded(trace: Trace) -> Iterator[tuple[int, Pass, Node]]:
    for i, step in enumerate(trace.passes):
        for row in step.rows:
            for node in row.nodes:
                yield i, step, node


def _depth(plan: Plan) -> int:
    """Nodes on the longest path from the root to a leaf (an empty root does not count)."""
    deepest, todo = 0, [(plan.root, 1 if plan.root.tokens else 0)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        todo += [(child, depth + 1) for child in node.children.values()]
    return deepest


@pytest.mark.parametrize("seed", SEEDS)
def test_every_target_is_scored_exactly_once(seed: int) -> None:
    case = _case(seed)
    # From the requests alone: token p + 1 of context + continuation is scored at position p, for each
    # continuation token.
    want = sorted(
        (k, p, (r.context + r.continuation)[p + 1])
        for k, r in enumerate(case.requests)
        for p in range(len(r.context) - 1, r.length - 1)
    )
    got = sorted((t.request, t.position, t.token) for _, _, node in _forwarded(_run(case)) for t in node.targets)
    assert got == want


@pytest.mark.parametrize("seed", SEEDS)
def test_each_node_is_forwarded_once_on_its_parents_live_cache(seed: int) -> None:
    case = _case(seed)
    trace = _run(case)
    nodes = [id(node) for _, _, node in _forwarded(trace)]
    assert sorted(nodes) == sorted(id(n) for n in case.plan.root.walk() if n.tokens)
    # The unique-prefix floor, by definition: every distinct non-empty prefix of the inputs, once.
    inputs = {r.input for r in case.requests}
    floor = len({x[:n] for x in inputs for n in range(1, len(x) + 1)})
    assert sum(len(node.tokens) for _, _, node in _forwarded(trace)) == floor
    roots = [case.plan.root] if case.plan.root.tokens else list(case.plan.root.children.values())
    alive: set[int] = set()
    for step in trace.passes:
        for row in step.rows:
            siblings = roots if row.parent is None else list(row.parent.children.values())
            assert row.parent is None or id(row.parent) in alive  # kept before, not yet released
            assert all(any(n is s for s in siblings) for n in row.nodes)
            assert all(n.start == row.start for n in row.nodes)
        alive |= {id(n) for n in step.keep}
        alive -= {id(n) for n in step.release}


@pytest.mark.parametrize("seed", SEEDS)
def test_no_pass_of_several_rows_holds_more_than_the_budget(seed: int) -> None:
    case = _case(seed)
    trace = _run(case)
    pack = case.scheduler.pack
    for step, budget in zip(trace.passes, trace.budgets, strict=True):
        rows, prefix, width = len(step.rows), max(r.start for r in step.rows), max(r.width for r in step.rows)
        if rows * (prefix + width) > budget:
            # A row is taken whatever it holds: one node, or siblings packed up to `pack` tokens; the
            # scorer unpacks or chunks it if the device runs out of memory.
            assert rows == 1 and (len(step.rows[0].nodes) == 1 or width <= pack)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_cache_is_kept_for_its_children_and_freed_after_its_last_use(seed: int) -> None:
    case = _case(seed)
    trace = _run(case)
    kept_in: dict[int, int] = {}
    last_use: dict[int, int] = {}
    freed_in: dict[int, int] = {}
    for i, step in enumerate(trace.passes):
        for row in step.rows:
            if row.parent is not None:
                last_use[id(row.parent)] = i
        for node in step.keep:
            assert node.children and id(node) not in kept_in
            kept_in[id(node)] = i
        for node in step.release:
            assert id(node) in kept_in and id(node) not in freed_in
            freed_in[id(node)] = i
    assert {id(n) for _, _, n in _forwarded(trace) if n.children} == set(kept_in)  # every node with children
    assert freed_in == last_use  # each freed once, right after the last pass that continues it


@pytest.mark.parametrize("seed", SEEDS)
def test_the_caches_alive_were_kept_by_at_most_depth_minus_one_passes(seed: int) -> None:
    # Depth first: the rows each pass leaves waiting lie under the rows of later passes, which descend
    # from them; so from the bottom of the stack up, the shallowest row of each pass's children is
    # deeper, and the caches they continue were kept by at most depth - 1 passes (a leaf keeps nothing).
    case = _case(seed)
    trace = _run(case)
    alive: dict[int, int] = {}  # node id: the pass that kept it
    for i, step in enumerate(trace.passes):
        alive |= {id(n): i for n in step.keep}
        for node in step.release:
            del alive[id(node)]
        assert len(set(alive.values())) <= max(0, _depth(case.plan) - 1)


def test_halves_forward_the_same_nodes_in_the_same_order() -> None:
    for seed in SEEDS:
        case = _case(seed)
        for step in _run(case).passes:
            halves = step.halves()
            nodes = [n for row in step.rows for n in row.nodes]
            if halves is None:
                assert len(nodes) == 1
                continue
            first, second = halves
            assert [n for h in halves for row in h.rows for n in row.nodes] == nodes
            assert [*first.keep, *second.keep] == list(step.keep)
            assert (first.release, second.release) == ((), step.release)  # freed once both ran
            if len(step.rows) > 1:  # halved: each half holds at most what the pass held
                assert first.held <= step.held and second.held <= step.held
            else:  # unpacked: a row per node, which the scorer can chunk
                assert all(len(row.nodes) == 1 for h in halves for row in h.rows)


def _documents(documents: int, choices: int) -> list[TokenRequest]:
    """Documents with nothing in common, each a 10-token context with `choices` one-token answers."""
    return [
        TokenRequest(tuple(100 * d + t for t in range(10)), (100 * d + 50 + c,))
        for d in range(documents)
        for c in range(choices)
    ]


def test_the_choices_of_different_documents_share_a_pass() -> None:
    plan = build_plan(_documents(documents=4, choices=3))
    # One-token choices: an input drops the last token, so a document's choices share its context as
    # input; the trie is 4 leaves (4 x 10 tokens), packed into one row.
    passes = list(Scheduler(4096).passes(plan))
    assert [[len(row.nodes) for row in p.rows] for p in passes] == [[4]] and passes[0].keep == ()
    # Two-token choices: the contexts in one pass, then all 4 x 3 choices, packed a row per document.
    plan = build_plan([TokenRequest(r.context, r.continuation * 2) for r in _documents(4, 3)])
    passes = list(Scheduler(4096).passes(plan))
    assert [[len(row.nodes) for row in p.rows] for p in passes] == [[4], [3, 3, 3, 3]]
    assert len(passes[0].keep) == 4 and len(passes[1].release) == 4
    # Without a custom mask: a row per context, then a pass per document's choices, a row per choice.
    passes = list(Scheduler(4096, pack=0, mixed=False).passes(plan))
    assert [len(p.rows) for p in passes] == [4, 3, 3, 3, 3]
