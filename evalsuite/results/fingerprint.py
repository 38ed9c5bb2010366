"""Fingerprints of what a benchmark asked: two runs with equal fingerprints asked the same questions.

`prompts` is a sha256 over the ordered (context, continuation) pairs, `generation` a sha256 over the
generation settings (stop strings, token budget, greedy). Both are recorded per benchmark in results.json.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalsuite.benchmarks.contract import Request

SAME = "same prompts"
DIFFER = "prompts differ"
UNKNOWN = "prompts unknown"


@dataclass(frozen=True)
class Fingerprint:
    prompts: str  # sha256 hex over the ordered (context, continuation) pairs
    generation: str | None  # sha256 hex over the generation settings; None when nothing is generated
    n_requests: int

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Fingerprint:
        return cls(prompts=str(d["prompts"]), generation=d.get("generation"), n_requests=int(d["n_requests"]))


def _line(value: Any) -> bytes:
    # One JSON document per line: no separator inside a context can make two prompt lists hash alike.
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"


def fingerprint(requests: Iterable[Request]) -> Fingerprint:
    """The fingerprint of requests in evaluation order (the order is part of what v1 asked)."""
    prompts = hashlib.sha256()
    settings: list[Any] = []
    n = 0
    for req in requests:
        n += 1
        prompts.update(_line([req.context, req.continuation]))
        if req.request_type != "loglikelihood":
            setting = req.arguments[1]
            if setting not in settings:
                settings.append(setting)
    generation = hashlib.sha256(_line(settings)).hexdigest() if settings else None
    return Fingerprint(prompts=prompts.hexdigest(), generation=generation, n_requests=n)


def same_prompts(a: Fingerprint | None, b: Fingerprint | None) -> str:
    """SAME, DIFFER, or UNKNOWN when either side has no fingerprint (a model card, an older run)."""
    if a is None or b is None:
        return UNKNOWN
    return SAME if a == b else DIFFER
