"""MMLU prompts and scoring (spec leaderboard-v1.md §4): description line, dev[:5] in file order, letters."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

from evalsuite.benchmarks.table import BY_NAME
from evalsuite.data.sources import LocalDirSource
from evalsuite.pipeline.evaluate import prepare
from evalsuite.tasks import mmlu
from synth import write_split

SUBJECT = "high_school_us_history"
SPEC = dataclasses.replace(BY_NAME["mmlu"], configs=(SUBJECT,))


def mmlu_row(question: str, choices: list[str], answer: int) -> dict[str, Any]:
    return {"question": question, "subject": SUBJECT, "choices": choices, "answer": answer}


DEV = [
    mmlu_row("  When was the Declaration of Independence signed?\n", ["1776 ", "1789", "1812", "1865"], 0),
    mmlu_row(
        "Who was the first president?", ["John Adams", "George Washington", "Thomas Jefferson", "James Madison"], 1
    ),
    mmlu_row("Which war ended in 1865?", ["War of 1812", "Revolutionary War", "Civil War", "Mexican War"], 2),
    mmlu_row("Which state was bought from Russia?", ["Texas", "Hawaii", "Florida", "Alaska"], 3),
    mmlu_row("What did the 19th Amendment grant?", ["women's suffrage", "prohibition", "income tax", "tariffs"], 0),
    mmlu_row("A sixth dev question v1 never shows?", ["w", "x", "y", "z"], 1),
]
TEST = [
    mmlu_row("Which canal opened in 1914? ", ["Erie", "Suez ", "Panama", "Kiel"], 2),
    mmlu_row("Who wrote the Federalist No. 10?", ["Hamilton", "Madison", "Jay", "Franklin"], 1),
    mmlu_row("Which ship carried the Pilgrims?", ["Mayflower", "Bounty", "Endeavour", "Victory"], 0),
    mmlu_row("Which act repealed Prohibition?", ["the 18th", "the 21st", "the 16th", "the 14th"], 1),
]
PREFIX = (
    "The following are multiple choice questions (with answers) about high school us history.\n\n"
    "When was the Declaration of Independence signed?\nA. 1776 \nB. 1789\nC. 1812\nD. 1865\nAnswer: A\n\n"
    "Who was the first president?\nA. John Adams\nB. George Washington\nC. Thomas Jefferson\n"
    "D. James Madison\nAnswer: B\n\n"
    "Which war ended in 1865?\nA. War of 1812\nB. Revolutionary War\nC. Civil War\nD. Mexican War\nAnswer: C\n\n"
    "Which state was bought from Russia?\nA. Texas\nB. Hawaii\nC. Florida\nD. Alaska\nAnswer: D\n\n"
    "What did the 19th Amendment grant?\nA. women's suffrage\nB. prohibition\nC. income tax\nD. tariffs\n"
    "Answer: A\n\n"
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_split(tmp_path, "cais/mmlu", SUBJECT, "dev", DEV)
    write_split(tmp_path, "cais/mmlu", SUBJECT, "test", TEST)
    return tmp_path


def test_mmlu_description_names_the_subject_with_spaces():
    assert mmlu.description(SUBJECT) == (
        "The following are multiple choice questions (with answers) about high school us history."
    )


def test_mmlu_prompt_is_description_then_dev_first_five_in_file_order(data_dir: Path):
    by_question = {p.doc["query"].split("\n")[0]: p for p in prepare(SPEC, LocalDirSource(data_dir))}
    item = by_question["Which canal opened in 1914?"]
    query = "Which canal opened in 1914?\nA. Erie\nB. Suez \nC. Panama\nD. Kiel\nAnswer:"
    assert [r.context for r in item.requests] == [PREFIX + query] * 4


def test_mmlu_requests_the_four_letters_with_a_leading_space(data_dir: Path):
    for item in prepare(SPEC, LocalDirSource(data_dir)):
        assert [r.continuation for r in item.requests] == [" A", " B", " C", " D"]


def test_mmlu_every_doc_gets_the_same_shots_in_the_v1_shuffle_order(data_dir: Path):
    shuffled = list(TEST)
    random.Random(42).shuffle(shuffled)
    prepared = prepare(SPEC, LocalDirSource(data_dir))
    assert [TEST[p.doc_id] for p in prepared] == shuffled
    assert all(p.requests[0].context.startswith(PREFIX) for p in prepared)


def test_mmlu_acc_is_the_letter_argmax_and_acc_norm_equals_it():
    doc = mmlu.process_doc(TEST[0], SUBJECT)  # gold C
    assert mmlu.score(doc, [-2.0, -1.5, -0.5, -3.0]).metrics == {"acc": 1.0, "acc_norm": 1.0}
    assert mmlu.score(doc, [-2.0, -0.1, -0.5, -3.0]).metrics == {"acc": 0.0, "acc_norm": 0.0}
