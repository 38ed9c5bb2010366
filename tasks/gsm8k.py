"""GSM8k main, 5-shot acc by greedy generation (spec leaderboard-v1.md §7; gsm8k.py @b281b09)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from evalsuite.benchmarks.contract import Doc, Request, Scored
from evalsuite.benchmarks.contract import no_description as description
from evalsuite.errors import DataError

QUERY = "Question: {question}\nAnswer:"
# v1 stops at the first ":" too, so any colon in the reasoning ends the answer (and scores 0).
UNTIL = (":", "Question:", "Question")
MAX_GEN_TOKS = 256
ANSWER_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
INVALID = "[invalid]"

__all__ = ["description", "process_doc", "shot", "requests", "score", "extract_answer"]


def extract_answer(text: str) -> str:
    """First `#### N`, stripped, commas removed; compared as a string, so "18." != "18"."""
    match = ANSWER_RE.search(text)
    return match.group(1).strip().replace(",", "") if match else INVALID


def process_doc(row: Doc, config: str) -> Doc:
    # v1 asserted this: a gold answer without "#### N" would extract to INVALID and match any
    # answer-less generation.
    if extract_answer(row["answer"]) == INVALID:
        raise DataError("answer has no '#### N' final line")
    return row


def shot(doc: Doc) -> str:
    return QUERY.format(question=doc["question"]) + " " + doc["answer"]


def requests(doc: Doc, prefix: str) -> list[Request]:
    return [Request(prefix + QUERY.format(question=doc["question"]), until=UNTIL, max_gen_toks=MAX_GEN_TOKS)]


def score(doc: Doc, responses: Sequence[str]) -> Scored:
    gold = extract_answer(doc["answer"])
    extracted = extract_answer(responses[0])
    return Scored({"acc": 1.0 if extracted == gold else 0.0}, {"gold": gold, "extracted": extracted})
