"""The contract between the runner and the benchmark modules in tasks/: requests out, metrics back.

A task module provides `process_doc`, `description`, `shot`, `requests` and `score` (see `Task`); the
runner knows nothing else about a benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from evalsuite.errors import DataError

Doc = dict[str, Any]


@dataclass(frozen=True)
class Request:
    """One model call, in lm-eval's vocabulary: `request_type` names the `LM` method that answers it."""

    context: str
    continuation: str | None = None  # loglikelihood requests
    until: tuple[str, ...] = ()  # generate_until requests
    max_gen_toks: int = 256
    group: str | None = None  # requests of another group (TruthfulQA's mc1) are recorded apart

    @property
    def request_type(self) -> str:
        return "loglikelihood" if self.continuation is not None else "generate_until"

    @property
    def arguments(self) -> tuple[Any, ...]:
        if self.continuation is not None:
            return (self.context, self.continuation)
        # greedy: v1 called generate without sampling; the model's generation_config supplies the rest.
        return (self.context, {"until": list(self.until), "max_gen_toks": self.max_gen_toks, "do_sample": False})


@dataclass(frozen=True)
class Scored:
    """Per-document metrics plus what else is worth recording (gold label, extracted answer)."""

    metrics: Mapping[str, float]
    extra: Mapping[str, Any] = field(default_factory=dict)


class Task(Protocol):
    """What a task module of tasks/ provides; mypy checks every one of them (tasks/__init__.py).

    process_doc turns a dataset row into the document the other hooks read; a row it cannot use is a
    `DataError` naming what is wrong (the pipeline adds where). Other exceptions are bugs and surface.
    """

    def process_doc(self, row: Doc, config: str) -> Doc: ...
    def description(self, config: str) -> str: ...
    def shot(self, doc: Doc) -> str: ...
    def requests(self, doc: Doc, prefix: str) -> list[Request]: ...
    def score(self, doc: Doc, responses: Sequence[Any]) -> Scored: ...


def cell(row: Doc, path: str, kind: type | tuple[type, ...]) -> Any:
    """The row's value at `path` (`choices.text`: a column, then keys inside it), checked to be `kind`; a
    DataError naming the cell, what it holds and what the Hub dataset has there when it is not (a string
    where the dataset has a list would otherwise be read character by character, or fail in the task)."""
    value: Any = row
    for i, key in enumerate(path.split(".")):
        if not isinstance(value, Mapping) or key not in value:
            where = ".".join(path.split(".")[:i]) or "the row"
            raise DataError(f"{where} is a {type(value).__name__} without {key!r}; the Hub dataset has {path} there")
        value = value[key]
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise DataError(f"column {path} is a {type(value).__name__} ({value!r:.40}), the Hub dataset has a {names}")
    return value


def no_description(config: str) -> str:
    return ""


def choice_requests(prefix: str, query: str, choices: Sequence[str], group: str | None = None) -> list[Request]:
    # v1 MultipleChoiceTask: one loglikelihood per choice, the choice with ONE leading space
    # (" A" and "A" are different tokens).
    return [Request(prefix + query, " " + c, group=group) for c in choices]


def multiple_choice_metrics(lls: Sequence[float], choices: Sequence[str], gold: int) -> dict[str, float]:
    """v1 acc and acc_norm; acc_norm divides by the choice's length in characters (not tokens, not bytes)."""
    import numpy as np

    lls_arr = np.array(lls, dtype=np.float64)
    completion_len = np.array([float(len(c)) for c in choices])
    # An empty choice divides by 0 as in v1: -inf (never the argmax) or, for a log-likelihood of 0, nan
    # (np.argmax takes the first nan); the same per-document result, without numpy's warning per document.
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = lls_arr / completion_len
    return {
        "acc": 1.0 if int(np.argmax(lls_arr)) == gold else 0.0,
        "acc_norm": 1.0 if int(np.argmax(normalised)) == gold else 0.0,
    }


# The hooks of a plain multiple-choice task, whose documents hold "query", "choices" (the texts scored
# as continuations) and "gold" (the index of the right one): ARC and HellaSwag.


def choice_shot(doc: Doc) -> str:
    return doc["query"] + " " + doc["choices"][doc["gold"]]


def choice_doc_requests(doc: Doc, prefix: str) -> list[Request]:
    return choice_requests(prefix, doc["query"], doc["choices"])


def choice_score(doc: Doc, responses: Sequence[float]) -> Scored:
    return Scored(multiple_choice_metrics(responses, doc["choices"], doc["gold"]), {"gold": doc["gold"]})
