"""The backend contract: what a model engine must answer, and what a run records of it.

A backend is loaded from `BackendOptions` by `evalsuite.engine.load_backend` and gives the pipeline:

- `lm`: an lm-eval `LM` (lm_eval.api.model.LM). The pipeline calls only its two request methods, each
  with a list of `Instance`s and nothing else, and gets one answer per instance, in order:
    - `loglikelihood(instances)`: `instance.args` is (context, continuation); the answer is
      (log P(continuation | context), is_greedy). v1 scores read the log-probability.
    - `generate_until(instances)`: `instance.args` is (context, {"until": [...], "max_gen_toks": n,
      "do_sample": False}); the answer is the generated text, cut at the first stop sequence.
  How requests are batched, sorted, padded or cached is the backend's business (lm-eval's `CachingLM`
  can wrap it); so is whether it shows progress of its own (the pipeline shows one bar per benchmark).
- `info`: the `ModelInfo` written to results.json (what was evaluated, where, in which dtype, with
  which batch size and max length); every field that can change the numbers belongs there.
- `module`: the torch module that runs the forward passes, where there is one (router statistics hook
  its MoE gates); None for engines without one (a server, a compiled engine, remote replicas).
- `router_counts`: None, or an object that counts MoE routing where the forward passes run (the
  replicas of data parallel) and is used by the pipeline like evalsuite.moe.recorder.RouterRecorder
  (`track(benchmark)`, `write(run_dir)`, `close()`).
- `settings`: what else decides the numbers or the speed (engine class, data-parallel replicas, ...),
  recorded in results.json.
- `close()`: release what the backend holds (processes, a Ray instance it started).

An `lm` may declare `parallel_calls` (an int): how many calls it answers at once. The pipeline then keeps
that many calls in flight; each call is still answered as a whole, as if it were the only one.

An `lm` may declare `requests_per_call` (a dict by request type, like REQUESTS_PER_CALL below): how many
requests the pipeline puts in one call, when the backend shares work between the requests of a call (the
fast backend shares prefixes within a call). An `lm` whose answers' last bits depend on the other
requests of their call (they share its batches) declares `whole_calls = True`: a resumed run then sends
a partly answered call whole again, so that it is batched as in the uninterrupted run. An `lm` should call
`self.cache_hook.add_partial(request_type, instance.args, answer)` as each answer completes, as lm-eval's
HF class does: resume stores it then, so an interrupted call keeps what it had answered.

Accounting (results.json `engine.benchmarks`): an `lm` may offer `stats()`, cumulative counts with
`positions` (real token positions it forwarded) and `padded` (the same with padding); without it the
positions fed to `module` are counted (evalsuite.engine.accounting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from evalsuite.errors import ConfigError

if TYPE_CHECKING:
    from lm_eval.api.model import LM

    from evalsuite.results import ModelInfo

DTYPES = ("auto", "float32", "bfloat16", "float16")
# Requests per call to the LM, by request type, for a smooth progress bar only, unless the LM declares its
# own `requests_per_call`. Generations are slow, so fewer go in one call.
REQUESTS_PER_CALL = {"loglikelihood": 256, "generate_until": 16}


def split_calls(lm: Any, request_types: Sequence[str]) -> list[tuple[str, list[int]]]:
    """The calls the pipeline makes for requests of these types, in order: (request type, positions)."""
    by_type: dict[str, list[int]] = {}
    for i, request_type in enumerate(request_types):
        by_type.setdefault(request_type, []).append(i)
    per_call = {**REQUESTS_PER_CALL, **(getattr(lm, "requests_per_call", None) or {})}
    return [
        (request_type, indices[start : start + per_call[request_type]])
        for request_type, indices in by_type.items()
        for start in range(0, len(indices), per_call[request_type])
    ]


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


class Backend(Protocol):
    """A loaded model engine (see the module docstring for what each part must do)."""

    @property
    def lm(self) -> LM: ...

    @property
    def info(self) -> ModelInfo: ...

    @property
    def module(self) -> Any | None: ...

    @property
    def router_counts(self) -> Any | None: ...

    @property
    def settings(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def engine_name(lm: Any) -> str:
    """The class that answers the requests, as results.json records it (module.qualname)."""
    return f"{type(lm).__module__}.{type(lm).__qualname__}"
