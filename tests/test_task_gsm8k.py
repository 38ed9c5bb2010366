"""GSM8k prompt, stop strings and answer extraction (spec leaderboard-v1.md §7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite.benchmarks.table import BY_NAME
from evalsuite.data.sources import LocalDirSource
from evalsuite.pipeline.evaluate import prepare
from evalsuite.tasks import gsm8k
from synth import v1_draws, write_split

SPEC = BY_NAME["gsm8k"]


TRAIN = [
    {
        "question": f"Ann has {i} apples and buys 2 more. How many apples does she have?",
        "answer": f"She has {i} + 2 = <<{i}+2={i + 2}>>{i + 2} apples.\n#### {i + 2}",
    }
    for i in range(8)
]
TEST = [
    {
        "question": "A farm has 1,200 hens and buys 34 more. How many hens?",
        "answer": "It has 1,200 + 34 = <<1200+34=1234>>1,234 hens.\n#### 1,234",
    },
    {
        "question": "It was 3 degrees and fell by 8. What is it now?",
        "answer": "It is 3 - 8 = <<3-8=-5>>-5 degrees.\n#### -5",
    },
]


def test_gsm8k_shot_is_question_then_the_full_solution_after_one_space():
    assert gsm8k.shot(TRAIN[3]) == (
        "Question: Ann has 3 apples and buys 2 more. How many apples does she have?\n"
        "Answer: She has 3 + 2 = <<3+2=5>>5 apples.\n#### 5"
    )


def test_gsm8k_prompt_is_5_shots_then_the_question(tmp_path: Path):
    write_split(tmp_path, "openai/gsm8k", "main", "train", TRAIN)
    write_split(tmp_path, "openai/gsm8k", "main", "test", TEST)
    prepared = prepare(SPEC, LocalDirSource(tmp_path))
    expected = v1_draws(TEST, TRAIN, 5)
    assert [TEST[p.doc_id] for p in prepared] == [doc for doc, _ in expected]
    for item, (row, shots) in zip(prepared, expected, strict=True):
        shot_text = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
        [req] = item.requests
        assert req.context == shot_text + f"Question: {row['question']}\nAnswer:"


def test_gsm8k_generates_greedily_until_a_colon_or_question_for_256_tokens():
    [req] = gsm8k.requests(TEST[0], "")
    assert req.request_type == "generate_until"
    assert req.arguments == (
        "Question: A farm has 1,200 hens and buys 34 more. How many hens?\nAnswer:",
        {"until": [":", "Question:", "Question"], "max_gen_toks": 256, "do_sample": False},
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so 1,200 + 34 = 1,234.\n#### 1,234", "1234"),
        ("#### -5", "-5"),
        ("#### 18.", "18."),
        ("#### 7\nthen #### 8", "7"),
        ("The answer is 18.", "[invalid]"),
        ("####18", "[invalid]"),
        ("#### $18", "[invalid]"),
    ],
)
def test_gsm8k_extracts_the_first_hash_answer_as_a_string(text: str, expected: str):
    assert gsm8k.extract_answer(text) == expected


def test_gsm8k_acc_is_exact_string_match_against_the_gold_extracted_the_same_way():
    assert gsm8k.score(TEST[0], [" 1,200 and 34 make\n#### 1234"]).metrics == {"acc": 1.0}
    assert gsm8k.score(TEST[1], [" it fell\n#### -5"]).metrics == {"acc": 1.0}
    assert gsm8k.score(TEST[1], [" it fell\n#### -5."]).metrics == {"acc": 0.0}  # "-5." != "-5"
    assert gsm8k.score(TEST[1], [" it fell to -5 degrees"]).metrics == {"acc": 0.0}  # "[invalid]"
