"""The "vllm" backend: lm-eval's own vLLM model class, set up as v1 ran (the contract: evalsuite.engine.base).

For GPU machines with `evalsuite[vllm]` installed. Same requests as the exact path (no BOS, v1's max
length with left truncation, greedy, the stop strings, 256 new tokens); other kernels, so numbers
differ in rounding: `evalsuite verify` against an `hf` run says by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite.engine.base import Backend, BackendOptions, engine_name
from evalsuite.engine.model_files import ModelFiles
from evalsuite.errors import ConfigError, ModelError, one_line
from evalsuite.paths import display_path
from evalsuite.results import ModelInfo

if TYPE_CHECKING:
    from lm_eval.api.model import LM

SEED = 1234  # vLLM's engine seed; greedy decoding does not draw from it
MAX_GEN_TOKS = 256  # v1's cap on generated tokens


@dataclass(frozen=True)
class VLLMBackend(Backend):
    """The model lives inside vLLM's engine: no meter, no router counter (vLLM frees its GPU memory when
    the engine is garbage-collected)."""

    lm: LM
    info: ModelInfo
    arguments: dict[str, Any]

    @property
    def settings(self) -> dict[str, Any]:
        keep = ("tensor_parallel_size", "max_length", "batch_size", "seed", "truncation_side", "add_bos_token")
        return {k: self.arguments[k] for k in keep}


def check_available() -> None:
    """One-line errors for what vLLM needs before anything is loaded: the package, then a CUDA GPU."""
    if find_spec("vllm") is None:
        raise ConfigError(
            "--backend vllm needs vLLM, which is not installed: `make install EXTRAS=vllm` or "
            "`pip install 'evalsuite[vllm]'` on a machine with a CUDA GPU (or use --backend hf)"
        )
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("--backend vllm needs a CUDA GPU and none is visible; use --backend hf on this machine")


def vllm_arguments(options: BackendOptions, path: Path, max_length: int) -> dict[str, Any]:
    """The keyword arguments of lm-eval's VLLM class for a v1 run of the model in `path`."""
    return {
        "pretrained": str(path),
        "dtype": options.dtype,
        "trust_remote_code": options.trust_remote_code,
        "add_bos_token": False,  # v1 never added a BOS token
        "max_length": max_length,  # v1's rule: config n_positions / max_position_embeddings / n_ctx
        "truncation_side": "left",  # v1 kept the end of a prompt that is too long
        "max_gen_toks": MAX_GEN_TOKS,
        "tensor_parallel_size": options.tensor_parallel,
        "batch_size": "auto",  # vLLM schedules its own batches
        "seed": SEED,
    }


def _computed_dtype(lm: Any, asked: str) -> str:
    """The dtype vLLM's engine resolved (`auto`: vLLM's own rule), as recorded for verify's policy; what was
    asked where the engine does not say."""
    config = getattr(getattr(getattr(lm, "model", None), "llm_engine", None), "model_config", None)
    dtype = getattr(config, "dtype", None)
    return asked if dtype is None else str(dtype).removeprefix("torch.")


def load(options: BackendOptions, files: ModelFiles) -> VLLMBackend:
    check_available()
    arguments = vllm_arguments(options, files.directory, files.max_length)
    from lm_eval.models.vllm_causallms import VLLM

    try:
        lm = VLLM(**arguments)
    except Exception as exc:
        raise ModelError(f"vLLM could not load {options.model} ({type(exc).__name__}: {one_line(exc)})") from exc
    info = ModelInfo(
        id=display_path(options.model),
        revision=options.revision,
        commit=files.commit,
        architecture=(files.config.architectures or [None])[0],
        dtype=_computed_dtype(lm, options.dtype),
        devices=tuple(f"cuda:{i}" for i in range(options.tensor_parallel)),
        batch_size=None,
        max_length=files.max_length,
        engine=engine_name(lm),
        weights_sha256=dict(files.weights_sha256),
    )
    return VLLMBackend(lm=lm, info=info, arguments=arguments)
