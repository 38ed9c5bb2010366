"""ARC-Challenge prompts and acc_norm (spec leaderboard-v1.md §1.3, §2), on synthetic rows in Hub schema."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from evalsuite.benchmarks.table import BY_NAME
from evalsuite.data.sources import LocalDirSource
from evalsuite.pipeline.evaluate import prepare
from evalsuite.tasks import arc
from synth import v1_draws, write_split

SPEC = BY_NAME["arc"]


def arc_row(question: str, texts: list[str], labels: list[str], key: str) -> dict[str, Any]:
    return {
        "id": "Synthetic_" + question.split("?")[0].replace(" ", "_"),
        "question": question,
        "choices": {"text": texts, "label": labels},
        "answerKey": key,
    }


# Train row i: gold is choice i % 4; odd rows use the numeric answer keys some ARC questions have.
TRAIN = [
    arc_row(
        f"Which tool does worker {i} carry?",
        [f"hammer {i}", f"saw {i}", f"drill {i}", f"rake {i}"],
        ["A", "B", "C", "D"] if i % 2 == 0 else ["1", "2", "3", "4"],
        ("ABCD" if i % 2 == 0 else "1234")[i % 4],
    )
    for i in range(30)
]
TRAIN_GOLD = {row["question"]: row["choices"]["text"][i % 4] for i, row in enumerate(TRAIN)}
TEST = [
    arc_row("Which planet is closest to the Sun?", ["Venus", "Mercury", "Mars"], ["A", "B", "C"], "B"),
    arc_row("What melts ice fastest?", ["salt", "sand", "sugar", "flour", "chalk"], list("ABCDE"), "A"),
    arc_row("Which gas do plants absorb?", ["oxygen", "carbon dioxide", "helium", "neon"], list("1234"), "2"),
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_split(tmp_path, "allenai/ai2_arc", "ARC-Challenge", "train", TRAIN)
    write_split(tmp_path, "allenai/ai2_arc", "ARC-Challenge", "test", TEST)
    return tmp_path


def test_arc_numeric_answer_key_maps_to_letter():
    row = arc_row("Which gas do plants absorb?", ["oxygen", "carbon dioxide", "helium", "neon"], list("1234"), "2")
    doc = arc.process_doc(row, "ARC-Challenge")
    assert doc["gold"] == 1
    assert arc.shot(doc) == "Question: Which gas do plants absorb?\nAnswer: carbon dioxide"


def test_arc_letter_answer_key_with_five_choices():
    doc = arc.process_doc(TEST[1] | {"answerKey": "E"}, "ARC-Challenge")
    assert doc["gold"] == 4
    assert arc.shot(doc) == "Question: What melts ice fastest?\nAnswer: chalk"


def test_arc_requests_every_choice_with_one_leading_space():
    doc = arc.process_doc(TEST[0], "ARC-Challenge")
    reqs = arc.requests(doc, "PREFIX\n\n")
    assert [r.context for r in reqs] == ["PREFIX\n\nQuestion: Which planet is closest to the Sun?\nAnswer:"] * 3
    assert [r.continuation for r in reqs] == [" Venus", " Mercury", " Mars"]


def test_arc_prompt_is_25_shots_drawn_by_the_v1_generator_then_the_question(data_dir: Path):
    prepared = prepare(SPEC, LocalDirSource(data_dir))
    expected = v1_draws(TEST, TRAIN, 25)
    assert [TEST[p.doc_id] for p in prepared] == [doc for doc, _ in expected]
    for item, (doc, shots) in zip(prepared, expected, strict=True):
        shot_text = "".join(f"Question: {s['question']}\nAnswer: {TRAIN_GOLD[s['question']]}\n\n" for s in shots)
        query = f"Question: {doc['question']}\nAnswer:"
        assert [r.context for r in item.requests] == [shot_text + query] * len(doc["choices"]["text"])
        assert [r.continuation for r in item.requests] == [" " + t for t in doc["choices"]["text"]]


def test_arc_prompt_written_out_for_two_shots(tmp_path: Path):
    train = [
        arc_row("What colour is a clear sky?", ["blue", "green"], ["A", "B"], "A"),
        arc_row("When does dew form?", ["at noon", "at night"], ["1", "2"], "2"),
    ]
    text = {
        "What colour is a clear sky?": "Question: What colour is a clear sky?\nAnswer: blue",
        "When does dew form?": "Question: When does dew form?\nAnswer: at night",
    }
    write_split(tmp_path, "allenai/ai2_arc", "ARC-Challenge", "train", train)
    write_split(tmp_path, "allenai/ai2_arc", "ARC-Challenge", "test", TEST[:1])
    [(_, drawn)] = v1_draws(TEST[:1], train, 2)

    [item] = prepare(dataclasses.replace(SPEC, num_fewshot=2), LocalDirSource(tmp_path))
    assert item.requests[0].context == (
        text[drawn[0]["question"]]
        + "\n\n"
        + text[drawn[1]["question"]]
        + "\n\nQuestion: Which planet is closest to the Sun?\nAnswer:"
    )


def test_acc_norm_divides_by_characters_not_bytes():
    # "éééé" is 4 characters but 8 UTF-8 bytes: per character it scores -5/4 = -1.25 against
    # -7/6 = -1.167 for "abcdef"; per byte it would win (-0.625 against -1.167), and on raw
    # log-likelihood it wins too (-5 against -7).
    row = arc_row("Which word?", ["éééé", "abcdef"], ["A", "B"], "B")
    doc = arc.process_doc(row, "ARC-Challenge")
    metrics = arc.score(doc, [-5.0, -7.0]).metrics
    assert metrics == {"acc": 0.0, "acc_norm": 1.0}


def test_acc_norm_length_leaves_out_the_leading_space():
    # Without the space: -1.1/1 = -1.1 against -3.0/3 = -1.0, so "bbb" wins; counting the space it
    # would be -1.1/2 = -0.55 against -3.0/4 = -0.75 and "a" would win.
    doc = arc.process_doc(arc_row("Which one?", ["a", "bbb"], ["A", "B"], "B"), "ARC-Challenge")
    assert arc.score(doc, [-1.1, -3.0]).metrics == {"acc": 0.0, "acc_norm": 1.0}


def test_acc_is_the_raw_log_likelihood_argmax():
    doc = arc.process_doc(TEST[1], "ARC-Challenge")  # gold "salt" (4 chars) against "chalk" (5)
    # raw: salt -4.0 beats chalk -4.5; per char: chalk -0.9 beats salt -1.0
    metrics = arc.score(doc, [-4.0, -9.0, -9.0, -9.0, -4.5]).metrics
    assert metrics == {"acc": 1.0, "acc_norm": 0.0}
