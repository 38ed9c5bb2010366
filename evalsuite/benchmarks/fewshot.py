"""v1's document order and few-shot draws (spec leaderboard-v1.md §1.1-1.2, §10.2).

Per task: the eval docs are shuffled with `random.Random(42)`, and that same generator then draws
`sample(train, k)` for each doc in the shuffled order, so a doc's shots depend on its position.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

DOC_SHUFFLE_SEED = 42
SHOT_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Scheduled:
    position: int  # place in the shuffled order
    doc_id: int  # index in the evaluated split, dataset order
    shot_ids: tuple[int, ...]  # indices into the few-shot split, in the order they appear


def v1_schedule(
    n_docs: int,
    pool_size: int,
    num_fewshot: int,
    sampling: Literal["random", "first_n"],
    limit: int | None = None,
) -> list[Scheduled]:
    """The docs v1 evaluates, in its order, with their shots; `limit` keeps the first N after the shuffle."""
    rnd = random.Random()
    rnd.seed(DOC_SHUFFLE_SEED)
    order = list(range(n_docs))
    rnd.shuffle(order)
    if limit is not None:
        order = order[:limit]
    pool = range(pool_size)  # sampling indices draws exactly what sampling the docs would
    out = []
    for position, doc_id in enumerate(order):
        if num_fewshot == 0:
            shots: Sequence[int] = ()  # v1 does not touch the generator for 0-shot
        elif sampling == "first_n":
            shots = pool[:num_fewshot]  # MMLU: dev in file order, generator untouched
        else:
            shots = rnd.sample(pool, num_fewshot)  # exactly k, never k+1 and truncate
        out.append(Scheduled(position, doc_id, tuple(shots)))
    return out


def context_prefix(description: str, shots: Sequence[str]) -> str:
    """`description\\n\\n` + shots joined by a blank line + `\\n\\n`; the query follows."""
    head = description + SHOT_SEPARATOR if description else ""
    body = SHOT_SEPARATOR.join(shots) + SHOT_SEPARATOR if shots else ""
    return head + body
