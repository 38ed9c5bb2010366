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
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evalsuite.benchmarks.contract import Request
from evalsuite.engine.fast.tokenize import encode_pairs, prefix_token_id
from evalsuite.engine.fast.trie import unique_prefix_floor


@dataclass(frozen=True)
class BenchmarkCost:
    requests: int
    tokens_forwarded: int | None  # None: not known (the model runs elsewhere)
    positions_forwarded: int | None
    unique_prefix_floor: int | None  # None: no log-likelihood requests
    model_seconds: float
    exact_path_requests: int | None = None  # fast backend: requests it sent to the exact path

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = asdict(self)
        d["model_seconds"] = round(self.model_seconds, 3)
        tokens, seconds = self.tokens_forwarded, self.model_seconds
        d["tokens_per_second"] = round(tokens / seconds, 1) if tokens is not None and seconds else None
        floor = self.unique_prefix_floor
        d["forwarded_over_floor"] = round(tokens / floor, 4) if floor and tokens is not None else None
        return d


def loglikelihood_inputs(tokenizer: Any, requests: Sequence[Request], max_length: int) -> list[tuple[int, ...]]:
    """The model input of each log-likelihood request, left-truncated as the exact path feeds it."""
    pairs = [(req.context, req.continuation or "") for req in requests if req.request_type == "loglikelihood"]
    return [r.truncated_input(max_length) for r in encode_pairs(tokenizer, pairs, prefix_token_id(tokenizer))]


class Accountant:
    """`with accountant.track(benchmark):` around a benchmark's model calls; `to_dict()` for results.json.

    Knows no backend by name: an LM that offers `stats()` (the fast backend) reports what it ran; the
    positions fed to `module` are counted by a hook (all of them where the LM has no `stats()`). With
    neither (data-parallel replicas, vllm), tokens are not known and only the time is recorded. An LM
    that offers `take_inputs()` (the fast backend) hands over the inputs it tokenised for the floor;
    for the others the requests are tokenised here."""

    def __init__(self, lm: Any, module: Any, max_length: int, requests: Mapping[str, Sequence[Request]]) -> None:
        self.lm, self.max_length, self.requests = lm, max_length, requests
        self.tokenizer = getattr(lm, "tokenizer", None)
        self.has_stats = callable(getattr(lm, "stats", None))
        self.takes_inputs = callable(getattr(lm, "take_inputs", None))
        self.fed = 0  # positions the model was fed (exact path), padding included
        self.done: dict[str, BenchmarkCost] = {}
        self._hook = module.register_forward_pre_hook(self._count, with_kwargs=True) if module is not None else None

    def _count(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and hasattr(ids, "numel"):
            self.fed += int(ids.numel())

    @contextlib.contextmanager
    def track(self, benchmark: str) -> Iterator[None]:
        before = self.lm.stats() if self.has_stats else None
        if self.takes_inputs:
            self.lm.take_inputs()  # what came before this benchmark is not its
        fed, started = self.fed, time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        requests = self.requests.get(benchmark, ())
        floor = None
        if self.takes_inputs:
            inputs = self.lm.take_inputs()
            floor = unique_prefix_floor(inputs) if inputs else None
        elif self.tokenizer is not None:
            inputs = loglikelihood_inputs(self.tokenizer, requests, self.max_length)
            floor = unique_prefix_floor(inputs) if inputs else None
        tokens: int | None
        positions: int | None
        exact_requests = None
        if before is not None:
            after = self.lm.stats()
            padded = after.padded - before.padded
            # The hook sees every forward; what the backend did not run itself, the exact path ran
            # (requests that need truncation), at batch size 1: all real.
            exact = self.fed - fed - padded
            tokens, positions = after.positions - before.positions + exact, padded + exact
            exact_requests = after.exact_requests - before.exact_requests
        elif self._hook is not None:
            tokens = positions = self.fed - fed
        else:
            tokens = positions = None
        self.done[benchmark] = BenchmarkCost(len(requests), tokens, positions, floor, seconds, exact_requests)

    def to_dict(self) -> dict[str, Any]:
        """The `benchmarks` entry of results.json's `engine` section."""
        return {name: cost.to_dict() for name, cost in self.done.items()}

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()
