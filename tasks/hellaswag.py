"""HellaSwag, 10-shot acc_norm (spec leaderboard-v1.md §3; lm_eval/tasks/hellaswag.py @b281b09)."""

from __future__ import annotations

import re

from evalsuite.benchmarks.contract import Doc, cell
from evalsuite.benchmarks.contract import choice_doc_requests as requests
from evalsuite.benchmarks.contract import choice_score as score
from evalsuite.benchmarks.contract import choice_shot as shot
from evalsuite.benchmarks.contract import no_description as description
from evalsuite.errors import DataError

BRACKETED = re.compile(r"\[.*?\]")  # WikiHow artefacts such as "[header]"

__all__ = ["description", "process_doc", "shot", "requests", "score", "preprocess"]


def preprocess(text: str) -> str:
    # Order matters and the double-space replacement is a single pass, exactly as v1.
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = BRACKETED.sub("", text)
    return text.replace("  ", " ")


def process_doc(row: Doc, config: str) -> Doc:
    # str.capitalize() also lower-cases the rest of ctx_b: v1 did this, so we do too.
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    choices = [preprocess(e) for e in cell(row, "endings", list)]
    gold = int(row["label"])
    if not 0 <= gold < len(choices):
        raise DataError(f"label {row['label']!r} is not an index into its {len(choices)} endings")
    return {"query": preprocess(row["activity_label"] + ": " + ctx), "choices": choices, "gold": gold}
