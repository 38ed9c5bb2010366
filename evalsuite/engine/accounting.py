"""What each benchmark cost: tokens forwarded, the unique-prefix floor, model seconds, tokens per second.

Definitions (also in the README, "Backends"):
- tokens_forwarded: real token positions run through the model. The fast backend counts what it runs;
  for the exact path (lm-eval's HF class) it is the positions fed to the model, all real at batch size 1
  (v1's setting), padding included at larger batch sizes.
- positions_forwarded: the same, padding included.
- unique_prefix_floor: distinct prefixes of the log-likelihood inputs, the least any schedule forwards.
- model_seconds: wall time inside the backend's calls; tokens_per_second = tokens_forwarded / model_seconds.
- exact_path_requests: (fast backend) requests answered by the exact path: truncation, and in reduced
  precision generations and the choices of documents that its rounding could reorder.
- truncated_requests: requests longer than the model's max length, cut from the left as v1 cut them
  (evalsuite.engine.truncation says when).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evalsuite.benchmarks.contract import Request
from evalsuite.engine.base import CostMeter
from evalsuite.engine.fast.trie import unique_prefix_floor
from evalsuite.engine.tokenize import TokenRequest, encode, encode_pairs, prefix_token_id
from evalsuite.engine.truncation import generation_cut, loglikelihood_cut


@dataclass(frozen=True)
class BenchmarkCost:
    requests: int
    tokens_forwarded: int | None  # None: not known (the model runs elsewhere)
    positions_forwarded: int | None
    unique_prefix_floor: int | None  # None: no log-likelihood requests
    model_seconds: float
    exact_path_requests: int | None = None  # fast backend: requests it sent to the exact path
    truncated_requests: int | None = None  # cut from the left to fit the max length (None: not known)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = asdict(self)
        d["model_seconds"] = round(self.model_seconds, 3)
        tokens, seconds = self.tokens_forwarded, self.model_seconds
        d["tokens_per_second"] = round(tokens / seconds, 1) if tokens is not None and seconds else None
        floor = self.unique_prefix_floor
        d["forwarded_over_floor"] = round(tokens / floor, 4) if floor and tokens is not None else None
        return d


def loglikelihood_requests(tokenizer: Any, requests: Sequence[Request]) -> list[TokenRequest]:
    """The log-likelihood requests as token ids, as the exact path encodes them."""
    pairs = [(req.context, req.continuation or "") for req in requests if req.request_type == "loglikelihood"]
    return encode_pairs(tokenizer, pairs, prefix_token_id(tokenizer))


def truncated(tokenizer: Any, requests: Sequence[Request], encoded: Sequence[TokenRequest], max_length: int) -> int:
    """How many of `requests` are cut from the left (`encoded`: their log-likelihood requests as token ids)."""
    cut = sum(loglikelihood_cut(r.length, max_length) for r in encoded)
    generations = (req for req in requests if req.request_type == "generate_until")
    return cut + sum(generation_cut(len(encode(tokenizer, req.context)), max_length) for req in generations)


class Accountant:
    """`with accountant.track(benchmark):` around a benchmark's model calls; `to_dict()` for results.json.

    Knows no backend by name: the backend's CostMeter says what it forwarded (without one, as for
    data-parallel replicas or vllm, tokens are not known and only the time is recorded) and hands over
    the requests it tokenised (for the floor and the truncation count), when it keeps them; else the
    requests are tokenised here."""

    def __init__(
        self, meter: CostMeter | None, tokenizer: Any, max_length: int, requests: Mapping[str, Sequence[Request]]
    ) -> None:
        self.meter, self.tokenizer, self.max_length, self.requests = meter, tokenizer, max_length, requests
        self.done: dict[str, BenchmarkCost] = {}

    @contextlib.contextmanager
    def track(self, benchmark: str) -> Iterator[None]:
        meter = self.meter
        before = meter.reading() if meter is not None else None
        if meter is not None:
            meter.take_inputs()  # what came before this benchmark is not its
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        requests = self.requests.get(benchmark, ())
        encoded = meter.take_inputs() if meter is not None else None
        if encoded is None and self.tokenizer is not None:
            encoded = loglikelihood_requests(self.tokenizer, requests)
        inputs = [r.truncated_input(self.max_length) for r in encoded or ()]
        floor = unique_prefix_floor(inputs) if inputs else None
        cut = (
            truncated(self.tokenizer, requests, encoded or (), self.max_length) if self.tokenizer is not None else None
        )
        tokens = positions = exact_requests = None
        if meter is not None and before is not None:
            after = meter.reading()
            tokens, positions = after.positions - before.positions, after.padded - before.padded
            if after.exact_requests is not None and before.exact_requests is not None:
                exact_requests = after.exact_requests - before.exact_requests
        self.done[benchmark] = BenchmarkCost(len(requests), tokens, positions, floor, seconds, exact_requests, cut)

    def to_dict(self) -> dict[str, Any]:
        """The `benchmarks` entry of results.json's `engine` section."""
        return {name: cost.to_dict() for name, cost in self.done.items()}
