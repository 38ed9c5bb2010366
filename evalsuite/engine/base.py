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
  its MoE gates); None for engines without one (a server, a compiled engine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from evalsuite.errors import ConfigError

if TYPE_CHECKING:
    from lm_eval.api.model import LM

    from evalsuite.results import ModelInfo

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    """What to load and how; the same inputs give the same numbers (all of them end up in ModelInfo)."""

    model: str  # Hub id (owner/name) or a local model directory
    backend: str = "hf"  # a name of evalsuite.engine.BACKENDS
    revision: str | None = None  # Hub branch, tag or commit
    dtype: str = "auto"  # auto: the config's dtype on GPU, float32 on CPU
    device: str = "auto"  # auto: all visible GPUs (device_map="auto"), else CPU
    batch_size: int = 1  # 1 reproduces v1 numerics exactly (no padding)
    max_length: int | None = None  # None: v1's rule (config n_positions / max_position_embeddings / n_ctx)
    trust_remote_code: bool = False
    threads: int | None = None  # torch intra-op CPU threads; None: torch's default

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads {self.threads} must be a positive integer")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype {self.dtype!r} is not supported; use one of {', '.join(DTYPES)}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size} must be a positive integer")
        if self.max_length is not None and self.max_length < 1:
            raise ConfigError(f"max length {self.max_length} must be a positive number of tokens")


class Backend(Protocol):
    """A loaded model engine (see the module docstring for what each part must do)."""

    @property
    def lm(self) -> LM: ...

    @property
    def info(self) -> ModelInfo: ...

    @property
    def module(self) -> Any | None: ...
