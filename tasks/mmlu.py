"""MMLU, 5-shot acc, one config per subject (spec leaderboard-v1.md §4; hendrycks_test.py @b281b09, VERSION 1)."""

from __future__ import annotations

from collections.abc import Sequence

from evalsuite.benchmarks.contract import Doc, Request, Scored, cell, choice_requests, multiple_choice_metrics
from evalsuite.errors import DataError

DESCRIPTION = "The following are multiple choice questions (with answers) about {subject}."
LETTERS = ["A", "B", "C", "D"]
# The 57 `hendrycksTest-<subject>` tasks of v1 = the 57 configs of cais/mmlu.
SUBJECTS: tuple[str, ...] = tuple(
    """abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology
    college_chemistry college_computer_science college_mathematics college_medicine college_physics
    computer_security conceptual_physics econometrics electrical_engineering elementary_mathematics
    formal_logic global_facts high_school_biology high_school_chemistry high_school_computer_science
    high_school_european_history high_school_geography high_school_government_and_politics
    high_school_macroeconomics high_school_mathematics high_school_microeconomics high_school_physics
    high_school_psychology high_school_statistics high_school_us_history high_school_world_history
    human_aging human_sexuality international_law jurisprudence logical_fallacies machine_learning
    management marketing medical_genetics miscellaneous moral_disputes moral_scenarios nutrition
    philosophy prehistory professional_accounting professional_law professional_medicine
    professional_psychology public_relations security_studies sociology us_foreign_policy virology
    world_religions""".split()
)

__all__ = ["description", "process_doc", "shot", "requests", "score"]


def description(config: str) -> str:
    return DESCRIPTION.format(subject=config.replace("_", " "))


def process_doc(row: Doc, config: str) -> Doc:
    # The question is stripped, the choices are not (some end in spaces, and v1 kept them).
    if not 0 <= int(row["answer"]) < len(LETTERS) or len(cell(row, "choices", list)) != len(LETTERS):
        raise DataError(f"answer {row['answer']!r} with {len(row['choices'])} choices; MMLU has 4 choices, answer 0-3")
    options = "".join(f"{letter}. {choice}\n" for letter, choice in zip(LETTERS, row["choices"], strict=False))
    return {"query": f"{row['question'].strip()}\n{options}Answer:", "gold": int(row["answer"])}


def shot(doc: Doc) -> str:
    return doc["query"] + " " + LETTERS[doc["gold"]]


def requests(doc: Doc, prefix: str) -> list[Request]:
    # The choices scored are the letters; acc_norm equals acc since each has length 1.
    return choice_requests(prefix, doc["query"], LETTERS)


def score(doc: Doc, responses: Sequence[float]) -> Scored:
    return Scored(multiple_choice_metrics(responses, LETTERS, doc["gold"]), {"gold": doc["gold"]})
