"""HellaSwag, 10-shot acc_norm (spec leaderboard-v1.md §3; lm_eval/tasks/hellaswag.py @b281b09)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from evalsuite.benchmarks.contract import Doc, Request, Scored, choice_requests, multiple_choice_metrics
from evalsuite.benchmarks.contract import no_description as description

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
    choices = [preprocess(e) for e in row["endings"]]
    gold = int(row["label"])
    if not 0 <= gold < len(choices):
        raise ValueError(f"label {row['label']!r} is not an index into its {len(choices)} endings")
    return {"query": preprocess(row["activity_label"] + ": " + ctx), "choices": choices, "gold": gold}


def shot(doc: Doc) -> str:
    return doc["query"] + " " + doc["choices"][doc["gold"]]


def requests(doc: Doc, prefix: str) -> list[Request]:
    return choice_requests(prefix, doc["query"], doc["choices"])


def score(doc: Doc, responses: Sequence[float]) -> Scored:
    return Scored(multiple_choice_metrics(responses, doc["choices"], doc["gold"]), {"gold": doc["gold"]})
