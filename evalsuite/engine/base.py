"""The backend contract: what a model engine gives the pipeline, and what it declares about itself.

A backend is a module with `load(options: BackendOptions, files: ModelFiles) -> Backend`, registered by
name in evalsuite.engine.BACKENDS (or by a package's `evalsuite.backends` entry point). `files` is the
model as the run resolved it once (evalsuite.engine.model_files): the backend loads exactly those files.
What the pipeline, the accounting, the progress bar and resume use of a loaded backend is exactly the
members of `Backend` below; `Backend` itself holds the defaults, so a backend states only where it
differs:

- `lm`: an lm-eval `LM`. The pipeline calls only its two request methods, each with a list of `Instance`s,
  and gets one answer per instance, in order:
    - `loglikelihood(instances)`: `instance.args` is (context, continuation); the answer is
      (log P(continuation | context), is_greedy). v1 scores read the log-probability.
    - `generate_until(instances)`: `instance.args` is (context, {"until": [...], "max_gen_toks": n,
      "do_sample": False}); the answer is the generated text, cut at the first stop sequence.
  How requests are batched, sorted, padded or cached is the backend's business. The `lm` should call
  `self.cache_hook.add_partial(request_type, instance.args, answer)` as each answer completes, as lm-eval's
  HF class does: resume stores it then, and the progress bar moves with it.
- `info`: the `ModelInfo` written to results.json (what was evaluated, where, in which dtype, with which
  batch size and max length); every field that can change the numbers belongs there.
- `calls`: how the pipeline cuts the requests into calls of the `lm` (`Calls`: requests per call by type,
  calls in flight at once, whether a call must be answered whole to be batched as before).
- `settings`: what else decides the numbers or the speed, recorded in results.json (`engine`).
- `meter()`: None, or a `CostMeter` of what the backend forwarded (results.json `engine.benchmarks`).
- `router_counter()`: None, or a `RouterCounter` of MoE routing in the backend's forward passes.
  A backend whose forward passes hold positions that are not real (padding, rows that have stopped)
  publishes the real ones of each pass through evalsuite.moe.positions; the counter reads only those
  (with nothing published, every position counts).
- `close()`: release what the backend holds (processes, a Ray instance it started, the hooks of its meter
  and router counter).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evalsuite.errors import ConfigError

if TYPE_CHECKING:
    from lm_eval.api.model import LM

    from evalsuite.engine.tokenize import TokenRequest
    from evalsuite.results import ModelInfo

DTYPES = ("auto", "float32", "bfloat16", "float16")
# Requests per call to the LM, by request type, unless the backend declares its own: for a smooth progress
# bar only. Generations are slow, so fewer go in one call.
REQUESTS_PER_CALL: Mapping[str, int] = {"loglikelihood": 256, "generate_until": 16}


@dataclass(frozen=True)
class Calls:
    """How the pipeline calls a backend's `lm`.

    `per_call`: how many requests of each type go in one call (a backend that shares work between the
    requests of a call, as the fast backend shares prefixes, wants large calls). `in_flight`: how many
    calls the `lm` answers at once (data-parallel replicas); each is still answered as if it were the
    only one. `whole`: the last bits of an answer depend on the other requests of its call (they share its
    batches): a resumed run sends a partly answered call whole again, so that it is batched as before."""

    per_call: Mapping[str, int] = field(default_factory=lambda: dict(REQUESTS_PER_CALL))
    in_flight: int = 1
    whole: bool = False

    def split(self, request_types: Sequence[str]) -> list[tuple[str, list[int]]]:
        """The calls for requests of these types, in order: (request type, positions)."""
        by_type: dict[str, list[int]] = {}
        for i, request_type in enumerate(request_types):
            by_type.setdefault(request_type, []).append(i)
        per_call = {**REQUESTS_PER_CALL, **self.per_call}
        return [
            (request_type, indices[start : start + per_call[request_type]])
            for request_type, indices in by_type.items()
            for start in range(0, len(indices), per_call[request_type])
        ]


@dataclass(frozen=True)
class CostReading:
    """Cumulative counts of a backend's forward passes (the run records their difference per benchmark)."""

    positions: int  # real token positions forwarded
    padded: int  # positions forwarded, padding included
    exact_requests: int | None = None  # requests a fast backend sent to its exact path (None: no such path)


class CostMeter(Protocol):
    """What a backend forwarded (evalsuite.engine.accounting reads it around each benchmark)."""

    def reading(self) -> CostReading: ...

    def take_inputs(self) -> list[TokenRequest] | None:
        """The log-likelihood requests as token ids since the last take (for the unique-prefix floor and
        the truncation count), or None when the meter does not keep them (the accounting then tokenises the
        requests itself)."""
        ...


class RouterCounter(Protocol):
    """MoE routing counts of a backend's forward passes (evalsuite.moe.recorder.RouterRecorder is one)."""

    def track(self, benchmark: str) -> contextlib.AbstractContextManager[Any]:
        """Counts the routing of the forward passes inside the block as `benchmark`'s."""
        ...

    def frame(self) -> Any:
        """The counts so far as a DataFrame with evalsuite.moe.stats.COLUMNS."""
        ...

    def take(self) -> Any:
        """The counts so far (as `frame`), then forget them (a data-parallel replica hands over each call's)."""
        ...

    def write(self, run_dir: str | Path) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Backend:
    """A loaded model engine: `lm` and `info` are each backend's own; the rest are defaults (see the
    module docstring for what each member means)."""

    lm: LM
    info: ModelInfo
    calls: Calls = Calls()

    @property
    def settings(self) -> dict[str, Any]:
        return {}

    def meter(self) -> CostMeter | None:
        return None

    def router_counter(self) -> RouterCounter | None:
        return None

    def close(self) -> None:
        """Nothing to release beyond what garbage collection frees."""


class WrappingBackend(Backend):
    """A backend around `inner` with an `lm` of its own (set by the subclass): every other member is the
    inner backend's (resume's store wrapper is one)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    @property
    def info(self) -> ModelInfo:  # type: ignore[override]
        return self.inner.info

    @property
    def calls(self) -> Calls:  # type: ignore[override]
        return self.inner.calls

    @property
    def settings(self) -> dict[str, Any]:
        return self.inner.settings

    def meter(self) -> CostMeter | None:
        return self.inner.meter()

    def router_counter(self) -> RouterCounter | None:
        return self.inner.router_counter()

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    """What to load and how; the same inputs give the same numbers (all of them end up in ModelInfo)."""

    model: str  # Hub id (owner/name) or a local model directory
    backend: str = "fast"  # a name of evalsuite.engine.BACKENDS; "hf" is the bit-exact v1 path
    revision: str | None = None  # Hub branch, tag or commit
    dtype: str = "auto"  # auto: the config's dtype on GPU, float32 on CPU
    device: str = "auto"  # auto: all visible GPUs (device_map="auto"), else CPU
    batch_size: int | None = None  # hf backend; None: 1, which reproduces v1 numerics exactly (no padding)
    max_length: int | None = None  # None: v1's rule (config n_positions / max_position_embeddings / n_ctx)
    max_batch_tokens: int | None = None  # fast backend: positions per forward pass; None: from free memory
    trust_remote_code: bool = False
    threads: int | None = None  # torch intra-op CPU threads; None: the idle cores (evalsuite.engine.threads)
    tensor_parallel: int = 1  # GPUs one model is sharded over by tensor parallelism (the vllm backend)
    allow_missing_weights: bool = False  # score a checkpoint whose weights do not match its config

    def __post_init__(self) -> None:
        if self.tensor_parallel < 1:
            raise ConfigError(f"--tensor-parallel {self.tensor_parallel} must be a positive integer")
        if self.tensor_parallel > 1 and self.backend != "vllm":
            raise ConfigError(
                f"--tensor-parallel {self.tensor_parallel} needs --backend vllm; the {self.backend} backend spreads "
                "a model over all visible GPUs with --device auto"
            )
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ConfigError(f"--max-batch-tokens {self.max_batch_tokens} must be a positive integer")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads {self.threads} must be a positive integer")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype {self.dtype!r} is not supported; use one of {', '.join(DTYPES)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size} must be a positive integer")
        # Each backend batches by its own measure: an option of the other would be silently ignored.
        if self.batch_size is not None and self.backend != "hf":
            raise ConfigError(
                f"--batch-size is the hf backend's; the {self.backend} backend "
                + ("batches by --max-batch-tokens (token positions per forward pass)" if self.backend == "fast"
                   else "schedules its own batches")
                + ": drop --batch-size, or use --backend hf"
            )  # fmt: skip
        if self.max_batch_tokens is not None and self.backend != "fast":
            raise ConfigError(
                f"--max-batch-tokens is the fast backend's; the {self.backend} backend "
                + ("batches by --batch-size" if self.backend == "hf" else "schedules its own batches")
                + ": drop --max-batch-tokens, or use --backend fast"
            )
        if self.max_length is not None and self.max_length < 1:
            raise ConfigError(f"max length {self.max_length} must be a positive number of tokens")


@dataclass(frozen=True, kw_only=True)
class ParallelOptions:
    """How many replicas, on what, and which Ray cluster."""

    replicas: int = 1  # --data-parallel
    gpus_per_replica: float = 0.0  # 0: CPU replicas
    cpus_per_replica: int = 1  # CPU threads of each replica (torch intra-op threads on CPU)
    ray_address: str | None = None  # None: a local Ray instance (or the one this process already joined)

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ConfigError(f"--data-parallel {self.replicas} must be a positive number of replicas")
        if self.gpus_per_replica < 0:
            raise ConfigError(f"--gpus-per-replica {self.gpus_per_replica} must be 0 (CPU) or more")
        if self.cpus_per_replica < 1:
            raise ConfigError(f"--cpus-per-replica {self.cpus_per_replica} must be a positive integer")

    def record(self) -> dict[str, Any]:
        """What results.json records of the parallel setting (the cluster address only as local/remote)."""
        return {
            "replicas": self.replicas,
            "gpus_per_replica": self.gpus_per_replica,
            "cpus_per_replica": self.cpus_per_replica,
            "ray": "local" if self.ray_address in (None, "local") else "cluster",
        }


def engine_name(lm: Any) -> str:
    """The class that answers the requests, as results.json records it (module.qualname)."""
    return f"{type(lm).__module__}.{type(lm).__qualname__}"
