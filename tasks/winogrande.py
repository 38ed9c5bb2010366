"""Winogrande xl, 5-shot acc with partial scoring (spec leaderboard-v1.md §6; winogrande.py @b281b09).

Partial evaluation (Trinh & Le 2018): the option replaces the blank and the model scores the rest of
the sentence, which is the same continuation for both options; only the contexts differ.
"""

from __future__ import annotations

from collections.abc import Sequence

from evalsuite.benchmarks.contract import Doc, Request, Scored
from evalsuite.benchmarks.contract import no_description as description
from evalsuite.errors import DataError

SHOT_SEPARATOR = "\n\n"
ANSWER_TO_GOLD = {"1": 0, "2": 1}

__all__ = ["description", "process_doc", "shot", "requests", "score", "partial_context", "partial_target"]


def process_doc(row: Doc, config: str) -> Doc:
    if "_" not in row["sentence"]:
        raise DataError(f"sentence {row['sentence']!r} has no '_' blank")
    if row["answer"] not in ANSWER_TO_GOLD:
        raise DataError(f"answer {row['answer']!r} is not '1' or '2'")
    return row


def partial_context(doc: Doc, option: str) -> str:
    return doc["sentence"][: doc["sentence"].index("_")] + option


def partial_target(doc: Doc) -> str:
    start = doc["sentence"].index("_") + 1
    return " " + doc["sentence"][start:].strip()


def _query(doc: Doc) -> str:
    return partial_context(doc, doc["option" + doc["answer"]])


def shot(doc: Doc) -> str:
    return _query(doc) + partial_target(doc)


def requests(doc: Doc, prefix: str) -> list[Request]:
    # v1 built the context with the CORRECT option, split it on "\n\n", dropped the last piece and
    # appended the partial context of each option: reproduced literally, split and all.
    pieces = (prefix + _query(doc)).split(SHOT_SEPARATOR)[:-1]
    target = partial_target(doc)
    return [
        Request(SHOT_SEPARATOR.join([*pieces, partial_context(doc, opt)]), target)
        for opt in (doc["option1"], doc["option2"])
    ]


def score(doc: Doc, responses: Sequence[float]) -> Scored:
    import numpy as np

    gold = ANSWER_TO_GOLD[doc["answer"]]
    return Scored({"acc": 1.0 if int(np.argmax(responses)) == gold else 0.0}, {"gold": gold})
