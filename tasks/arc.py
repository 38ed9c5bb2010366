"""ARC-Challenge, 25-shot acc_norm (spec leaderboard-v1.md §2; lm_eval/tasks/arc.py @b281b09)."""

from __future__ import annotations

from collections.abc import Sequence

from evalsuite.benchmarks.contract import Doc, Request, Scored, choice_requests, multiple_choice_metrics
from evalsuite.benchmarks.contract import no_description as description

QUERY = "Question: {question}\nAnswer:"
LETTERS = ["A", "B", "C", "D", "E"]
# Some ARC questions use numeric answer keys; v1 maps them to letters.
NUMERIC_KEYS = {"1": "A", "2": "B", "3": "C", "4": "D", "5": "E"}

__all__ = ["description", "process_doc", "shot", "requests", "score"]


def process_doc(row: Doc, config: str) -> Doc:
    key = NUMERIC_KEYS.get(row["answerKey"], row["answerKey"])
    if key not in LETTERS:
        raise ValueError(f"answerKey {row['answerKey']!r} is not one of A-E or 1-5")
    return {
        "query": QUERY.format(question=row["question"]),
        "choices": list(row["choices"]["text"]),
        "gold": LETTERS.index(key),
    }


def shot(doc: Doc) -> str:
    return doc["query"] + " " + doc["choices"][doc["gold"]]


def requests(doc: Doc, prefix: str) -> list[Request]:
    return choice_requests(prefix, doc["query"], doc["choices"])


def score(doc: Doc, responses: Sequence[float]) -> Scored:
    return Scored(multiple_choice_metrics(responses, doc["choices"], doc["gold"]), {"gold": doc["gold"]})
