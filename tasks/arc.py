"""ARC-Challenge, 25-shot acc_norm (spec leaderboard-v1.md §2; lm_eval/tasks/arc.py @b281b09)."""

from __future__ import annotations

from evalsuite.benchmarks.contract import Doc, cell
from evalsuite.benchmarks.contract import choice_doc_requests as requests
from evalsuite.benchmarks.contract import choice_score as score
from evalsuite.benchmarks.contract import choice_shot as shot
from evalsuite.benchmarks.contract import no_description as description
from evalsuite.errors import DataError

QUERY = "Question: {question}\nAnswer:"
LETTERS = ["A", "B", "C", "D", "E"]
# Some ARC questions use numeric answer keys; v1 maps them to letters.
NUMERIC_KEYS = {"1": "A", "2": "B", "3": "C", "4": "D", "5": "E"}

__all__ = ["description", "process_doc", "shot", "requests", "score"]


def process_doc(row: Doc, config: str) -> Doc:
    key = NUMERIC_KEYS.get(row["answerKey"], row["answerKey"])
    if key not in LETTERS:
        raise DataError(f"answerKey {row['answerKey']!r} is not one of A-E or 1-5")
    return {
        "query": QUERY.format(question=row["question"]),
        "choices": list(cell(row, "choices.text", list)),
        "gold": LETTERS.index(key),
    }
