"""Winogrande partial scoring (spec leaderboard-v1.md §6): both options as contexts, one shared continuation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalsuite.benchmarks.table import BY_NAME
from evalsuite.data.sources import LocalDirSource
from evalsuite.pipeline.evaluate import prepare
from evalsuite.tasks import winogrande
from synth import v1_draws, write_split

SPEC = BY_NAME["winogrande"]


def wg_row(sentence: str, option1: str, option2: str, answer: str) -> dict[str, Any]:
    return {"sentence": sentence, "option1": option1, "option2": option2, "answer": answer}


# Train row i and its shot: the whole sentence with the correct option in the blank.
TRAIN = [
    wg_row(
        f"Worker {i} gave tool {i} to the guard because _ was leaving.",
        f"Worker {i}",
        "the guard",
        "1" if i % 2 else "2",
    )
    for i in range(8)
]
TRAIN_SHOT = {
    row["sentence"]: f"Worker {i} gave tool {i} to the guard because {f'Worker {i}' if i % 2 else 'the guard'} "
    "was leaving."
    for i, row in enumerate(TRAIN)
}
VALIDATION = [
    wg_row("Maria lent Ana her umbrella because _ had two of them at home.", "Maria", "Ana", "1"),
    wg_row("The trophy did not fit in the case because the _   was too big.  ", "trophy", "case", "1"),
    wg_row("Sam called Lee after _ got the news.", "Sam", "Lee", "2"),
]
# (partial context with option1, with option2, the shared target) for each eval row, written out.
EXPECTED = {
    VALIDATION[0]["sentence"]: (
        "Maria lent Ana her umbrella because Maria",
        "Maria lent Ana her umbrella because Ana",
        " had two of them at home.",
    ),
    VALIDATION[1]["sentence"]: (
        "The trophy did not fit in the case because the trophy",
        "The trophy did not fit in the case because the case",
        " was too big.",
    ),
    VALIDATION[2]["sentence"]: ("Sam called Lee after Sam", "Sam called Lee after Lee", " got the news."),
}


def test_winogrande_partial_context_ends_at_the_option_and_target_is_the_stripped_rest():
    doc = winogrande.process_doc(VALIDATION[1], "winogrande_xl")
    assert winogrande.partial_context(doc, "trophy") == "The trophy did not fit in the case because the trophy"
    assert winogrande.partial_target(doc) == " was too big."


def test_winogrande_shot_is_the_sentence_with_the_correct_option():
    doc = winogrande.process_doc(VALIDATION[2], "winogrande_xl")
    assert winogrande.shot(doc) == "Sam called Lee after Lee got the news."


def test_winogrande_scores_the_same_continuation_after_each_option(tmp_path: Path):
    write_split(tmp_path, "allenai/winogrande", "winogrande_xl", "train", TRAIN)
    write_split(tmp_path, "allenai/winogrande", "winogrande_xl", "validation", VALIDATION)
    prepared = prepare(SPEC, LocalDirSource(tmp_path))
    expected = v1_draws(VALIDATION, TRAIN, 5)
    assert [VALIDATION[p.doc_id] for p in prepared] == [doc for doc, _ in expected]
    for item, (row, shots) in zip(prepared, expected, strict=True):
        shot_text = "".join(TRAIN_SHOT[s["sentence"]] + "\n\n" for s in shots)
        with_option1, with_option2, target = EXPECTED[row["sentence"]]
        assert [(r.context, r.continuation) for r in item.requests] == [
            (shot_text + with_option1, target),
            (shot_text + with_option2, target),
        ]


def test_winogrande_acc_compares_the_two_log_likelihoods_with_the_answer():
    doc1 = winogrande.process_doc(VALIDATION[0], "winogrande_xl")  # answer "1"
    doc2 = winogrande.process_doc(VALIDATION[2], "winogrande_xl")  # answer "2"
    assert winogrande.score(doc1, [-4.0, -5.0]).metrics == {"acc": 1.0}
    assert winogrande.score(doc2, [-4.0, -5.0]).metrics == {"acc": 0.0}
    assert winogrande.score(doc2, [-6.0, -5.0]).metrics == {"acc": 1.0}
