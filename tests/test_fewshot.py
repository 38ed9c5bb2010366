"""v1 document order and few-shot draws (spec leaderboard-v1.md §1.1-1.2, §10.2).

Expected values come from replaying CPython's random.Random(42) the way the spec describes: shuffle the
actual list of eval docs, then draw `rnd.sample(train, k)` from the actual train list for each doc in
turn. The schedule works on indices; the test maps docs back to their indices.
"""

from __future__ import annotations

import random

from evalsuite.benchmarks.fewshot import context_prefix, v1_schedule

EVAL_DOCS = [f"eval question {i}" for i in range(12)]
TRAIN_DOCS = [f"train question {i}" for i in range(40)]


def replay_v1(eval_docs: list[str], train: list[str], k: int) -> list[tuple[str, list[str]]]:
    """§10.2 literally: one generator, seeded 42, shuffles the docs and then samples k shots per doc."""
    rnd = random.Random()
    rnd.seed(42)
    docs = list(eval_docs)
    rnd.shuffle(docs)
    return [(doc, rnd.sample(train, k)) for doc in docs]


def as_docs(schedule, eval_docs, train) -> list[tuple[str, list[str]]]:
    return [(eval_docs[s.doc_id], [train[i] for i in s.shot_ids]) for s in schedule]


def test_docs_are_evaluated_in_the_random42_shuffle_order():
    shuffled = list(EVAL_DOCS)
    random.Random(42).shuffle(shuffled)
    schedule = v1_schedule(len(EVAL_DOCS), len(TRAIN_DOCS), 5, "random")
    assert [EVAL_DOCS[s.doc_id] for s in schedule] == shuffled
    assert [s.position for s in schedule] == list(range(len(EVAL_DOCS)))
    assert shuffled != EVAL_DOCS  # the shuffle does reorder these docs


def test_shots_are_drawn_per_doc_by_the_same_generator_that_shuffled():
    schedule = v1_schedule(len(EVAL_DOCS), len(TRAIN_DOCS), 5, "random")
    assert as_docs(schedule, EVAL_DOCS, TRAIN_DOCS) == replay_v1(EVAL_DOCS, TRAIN_DOCS, 5)


def test_shots_keep_the_order_random_sample_returns():
    schedule = v1_schedule(len(EVAL_DOCS), len(TRAIN_DOCS), 5, "random")
    first_shots = replay_v1(EVAL_DOCS, TRAIN_DOCS, 5)[0][1]
    assert [TRAIN_DOCS[i] for i in schedule[0].shot_ids] == first_shots
    assert first_shots != sorted(first_shots, key=TRAIN_DOCS.index)  # not sorted back into file order


def test_25_shots_from_a_small_pool_follow_cpython_sample():
    # k=25 from 30 takes random.sample's other code path (pool list instead of a selected set).
    train = [f"arc train {i}" for i in range(30)]
    schedule = v1_schedule(len(EVAL_DOCS), len(train), 25, "random")
    assert as_docs(schedule, EVAL_DOCS, train) == replay_v1(EVAL_DOCS, train, 25)


def test_second_doc_shots_depend_on_the_first_doc_having_drawn():
    rnd = random.Random()
    rnd.seed(42)
    docs = list(EVAL_DOCS)
    rnd.shuffle(docs)
    first = rnd.sample(TRAIN_DOCS, 5)
    second = rnd.sample(TRAIN_DOCS, 5)

    rnd_fresh = random.Random()  # had doc 1 not drawn, doc 2 would get what doc 1 got
    rnd_fresh.seed(42)
    rnd_fresh.shuffle(list(EVAL_DOCS))
    without_first_draw = rnd_fresh.sample(TRAIN_DOCS, 5)

    schedule = v1_schedule(len(EVAL_DOCS), len(TRAIN_DOCS), 5, "random")
    assert [TRAIN_DOCS[i] for i in schedule[1].shot_ids] == second
    assert without_first_draw == first != second


def test_draws_exactly_k_not_k_plus_one_truncated():
    # §1.2: sample(k+1)[:k] gives doc 1 the same shots but moves the generator on differently,
    # so every later doc would get other shots (LEH 0.4 / lighteval's k+1 habit).
    rnd = random.Random()
    rnd.seed(42)
    docs = list(EVAL_DOCS)
    rnd.shuffle(docs)
    truncated = [rnd.sample(TRAIN_DOCS, 6)[:5] for _ in docs]

    schedule = v1_schedule(len(EVAL_DOCS), len(TRAIN_DOCS), 5, "random")
    got = [[TRAIN_DOCS[i] for i in s.shot_ids] for s in schedule]
    assert got == [shots for _, shots in replay_v1(EVAL_DOCS, TRAIN_DOCS, 5)]
    assert got[0] == truncated[0]
    assert got[1] != truncated[1]


def test_zero_shot_has_no_shots_but_still_the_shuffled_order():
    shuffled = list(EVAL_DOCS)
    random.Random(42).shuffle(shuffled)
    schedule = v1_schedule(len(EVAL_DOCS), 0, 0, "random")
    assert [EVAL_DOCS[s.doc_id] for s in schedule] == shuffled
    assert all(s.shot_ids == () for s in schedule)


def test_first_n_takes_the_pool_prefix_in_file_order_for_every_doc():
    # MMLU: dev[:5] in file order, the generator only shuffles the docs.
    shuffled = list(EVAL_DOCS)
    random.Random(42).shuffle(shuffled)
    schedule = v1_schedule(len(EVAL_DOCS), 6, 5, "first_n")
    assert [EVAL_DOCS[s.doc_id] for s in schedule] == shuffled
    assert all(s.shot_ids == (0, 1, 2, 3, 4) for s in schedule)


def test_limit_keeps_the_first_n_docs_after_the_shuffle_with_the_full_runs_shots():
    full = replay_v1(EVAL_DOCS, TRAIN_DOCS, 5)
    limited = v1_schedule(len(EVAL_DOCS), len(TRAIN_DOCS), 5, "random", limit=4)
    assert as_docs(limited, EVAL_DOCS, TRAIN_DOCS) == full[:4]


def test_limit_above_the_doc_count_keeps_every_doc():
    schedule = v1_schedule(len(EVAL_DOCS), len(TRAIN_DOCS), 5, "random", limit=100)
    assert as_docs(schedule, EVAL_DOCS, TRAIN_DOCS) == replay_v1(EVAL_DOCS, TRAIN_DOCS, 5)


def test_context_prefix_is_description_then_shots_each_followed_by_a_blank_line():
    prefix = context_prefix("About tea.", ["Q: one\nA: 1", "Q: two\nA: 2"])
    assert prefix == "About tea.\n\nQ: one\nA: 1\n\nQ: two\nA: 2\n\n"


def test_context_prefix_without_description_starts_with_the_first_shot():
    assert context_prefix("", ["Q: one\nA: 1"]) == "Q: one\nA: 1\n\n"


def test_context_prefix_with_neither_is_empty_and_with_only_a_description_keeps_its_blank_line():
    assert context_prefix("", []) == ""
    assert context_prefix("About tea.", []) == "About tea.\n\n"
