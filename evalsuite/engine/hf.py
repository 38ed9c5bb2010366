"""The "hf" backend: transformers AutoModelForCausalLM placed by accelerate, wrapped in lm-eval's HFLM
as v1 ran it (the contract it fulfils: evalsuite.engine.base)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite.checks.weights import check_loading
from evalsuite.engine.base import BackendOptions, engine_name
from evalsuite.engine.weights import WEIGHT_SUFFIXES, file_sha256, weights_sha256
from evalsuite.errors import ConfigError, ModelError, one_line
from evalsuite.hub import repos
from evalsuite.hub.errors import hub_error, timeout
from evalsuite.hub.repos import RepoSnapshot
from evalsuite.naming import is_local_path
from evalsuite.paths import display_path
from evalsuite.results import ModelInfo

if TYPE_CHECKING:
    from lm_eval.api.model import LM

DEFAULT_MAX_LENGTH = 2048  # v1's fallback when neither config nor tokenizer gives a length
_HUGE = 10**12  # tokenizers report an "infinite" model_max_length with a huge sentinel


@dataclass(frozen=True)
class HFBackend:
    """A loaded transformers model behind lm-eval's HFLM (a Backend)."""

    lm: LM
    info: ModelInfo
    module: Any  # the transformers model, for router statistics
    router_counts: None = None  # routing is counted by hooks on `module`, in this process

    @property
    def settings(self) -> dict[str, Any]:
        return {}  # batch size, max length and the engine class are in `info`

    def close(self) -> None:
        """Nothing to release beyond what garbage collection frees."""


def resolve_model_dir(opts: BackendOptions) -> tuple[Path, str | None]:
    """A local directory holding the model, and the Hub commit it came from (None for local models)."""
    local = Path(opts.model).expanduser()
    if is_local_path(opts.model):
        if not local.is_dir():
            raise ModelError(f"model path {opts.model}: no such directory; give a Hub id (owner/name) or a model dir")
        if not (local / "config.json").is_file():
            raise ModelError(f"model dir {opts.model}: holds no config.json; point at a transformers model directory")
        if opts.revision:
            raise ConfigError(
                f"--revision {opts.revision} applies to Hub models; {opts.model} is a local directory "
                "(check out the revision there, or drop --revision)"
            )
        return local, None
    path, snapshot = hub_model_dir(opts.model, opts.revision)
    return path, snapshot.commit


# The files transformers loads of a Hub model: safetensors when the repo has them (not also the .bin copies,
# consolidated.* or original/ checkpoints, which can be tens of GB for a Mixtral).
_LOADED = ("*.json", "*.py", "*.model", "*.tiktoken", "*.txt")
_NOT_LOADED = ["original/*", "consolidated*"]


@functools.lru_cache(maxsize=8)
def hub_model_dir(model: str, revision: str | None) -> tuple[Path, RepoSnapshot]:
    """The Hub model at the commit `revision` names, downloaded (or found in the cache). Resolved once per
    process: the run's fingerprint and the loaded weights are of the same commit even if the branch moves."""
    from huggingface_hub import snapshot_download

    offline = "or pass a local model directory"
    snapshot = repos.snapshot(model, revision, fix=offline, lfs=True)  # the weights' digests come with it
    safetensors = any(f.endswith(".safetensors") for f in snapshot.files)
    weights = ["*.safetensors", "*.safetensors.index.json"] if safetensors else ["*.bin", "*.bin.index.json"]
    try:
        path = snapshot_download(
            model,
            revision=snapshot.commit,  # the commit resolved above, not the branch again
            allow_patterns=[*_LOADED, *weights],
            ignore_patterns=_NOT_LOADED,
            etag_timeout=timeout(),
        )
    except Exception as exc:
        raise hub_error(exc, model, revision=revision, fix=offline) from exc
    return Path(path), snapshot


def model_weights_sha256(opts: BackendOptions, path: Path, commit: str | None) -> dict[str, str]:
    """The weight files' sha256. A Hub model's are the digests the Hub declares for its LFS files (a large
    checkpoint is not read again to hash it); a local model's, and weights stored without LFS (small by
    the Hub's rules), are computed."""
    if commit is None:
        return weights_sha256(path)
    snapshot = hub_model_dir(opts.model, opts.revision)[1]
    names = sorted(p.name for p in path.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    return {name: snapshot.lfs_sha256.get(name) or file_sha256(path / name) for name in names}


def v1_max_length(config: Any, tokenizer: Any) -> int:
    """v1 (and lm-eval): the config's n_positions / max_position_embeddings / n_ctx, then the tokenizer."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if value:
            return int(value)
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < _HUGE:
        return int(tok_max)
    return DEFAULT_MAX_LENGTH


def _torch_dtype(name: str, config: Any, on_gpu: bool) -> Any:
    import torch

    if name == "auto":
        if not on_gpu:
            return torch.float32
        cfg = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "float32"
        return cfg if isinstance(cfg, torch.dtype) else getattr(torch, str(cfg).replace("torch.", ""))
    return getattr(torch, name)


def _placement(device: str) -> tuple[Any, bool]:
    """(device_map for from_pretrained, whether it is on GPU)."""
    import torch

    if device == "auto":
        return ("auto", True) if torch.cuda.is_available() else (None, False)
    if device == "cpu":
        return None, False
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA device is visible; use --device cpu")
        return ({"": device} if ":" in device else "auto"), True
    raise ConfigError(f"--device {device!r} is not supported; use auto, cpu, cuda or cuda:N")


def load(opts: BackendOptions) -> HFBackend:
    """Load the model and tokenizer and wrap them as v1 ran (the one entry point of this backend)."""
    model, tokenizer, info = load_model(opts)
    lm = make_lm(model, tokenizer, batch_size=opts.batch_size or 1, max_length=info.max_length or DEFAULT_MAX_LENGTH)
    engine = engine_name(lm)
    return HFBackend(lm=lm, info=replace(info, engine=engine), module=model)


def load_config_and_tokenizer(path: Path, trust_remote_code: bool) -> tuple[Any, Any]:
    """The model directory's config and tokenizer, each failure one line naming what to fix."""
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:
        _refuse_custom_code(exc, path, "model", trust_remote_code)
        raise ModelError(
            f"model dir {path}: config.json could not be read ({type(exc).__name__}: {one_line(exc)}); "
            "fix or replace it"
        ) from exc
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:
        _refuse_custom_code(exc, path, "tokenizer", trust_remote_code)
        raise ModelError(
            f"model dir {path}: the tokenizer could not be loaded ({type(exc).__name__}: {one_line(exc)}); "
            "the directory needs the model's tokenizer files (e.g. tokenizer.json and tokenizer_config.json)"
        ) from exc
    return config, tokenizer


def load_model(opts: BackendOptions) -> tuple[Any, Any, ModelInfo]:
    """Load the transformers model and tokenizer; returns them with the ModelInfo to record."""
    import logging

    import transformers

    path, commit = resolve_model_dir(opts)
    device_map, on_gpu = _placement(opts.device)
    if opts.threads is not None or not on_gpu:
        from evalsuite.engine import threads

        threads.choose(opts.threads)
    config, tokenizer = load_config_and_tokenizer(path, opts.trust_remote_code)
    dtype = _torch_dtype(opts.dtype, config, on_gpu)
    # transformers logs its own multi-line load report (and more about the same weights); the load check
    # below reports them in one line
    report_logger = logging.getLogger("transformers")
    report_level = report_logger.level
    report_logger.setLevel(logging.ERROR)
    try:
        loaded: Any = transformers.AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype,
            device_map=device_map,
            trust_remote_code=opts.trust_remote_code,
            output_loading_info=True,  # (model, what was missing / unexpected / mismatched)
        )
        model, loading_info = loaded
    except Exception as exc:
        _refuse_custom_code(exc, path, "model", opts.trust_remote_code)
        raise ModelError(
            f"model dir {path}: the weights could not be loaded ({type(exc).__name__}: {one_line(exc)}); "
            "check that the directory holds the model's weights (model.safetensors or shards plus index) "
            "and that they fit on --device"
        ) from exc
    finally:
        report_logger.setLevel(report_level)
    weights_not_loaded = check_loading(loading_info, path, opts.allow_missing_weights)
    model.eval()
    devices = sorted({str(d) for d in getattr(model, "hf_device_map", {}).values()} or {str(model.device)})
    info = ModelInfo(
        id=display_path(opts.model),
        revision=opts.revision,
        commit=commit,
        architecture=(config.architectures or [type(model).__name__])[0],
        dtype=str(model.dtype).replace("torch.", ""),  # what it really computes in
        devices=tuple(devices),
        batch_size=opts.batch_size or 1,
        max_length=opts.max_length or v1_max_length(config, tokenizer),
        num_parameters=sum(p.numel() for p in model.parameters()),
        weights_sha256=model_weights_sha256(opts, path, commit),
        weights_not_loaded=weights_not_loaded,
    )
    return model, tokenizer, info


def _refuse_custom_code(exc: Exception, path: Path, what: str, trusted: bool) -> None:
    """transformers refuses custom code naming its Python keyword; say which flag allows it."""
    if not trusted and "trust_remote_code" in str(exc):
        raise ModelError(
            f"model dir {path}: the {what} needs its own Python code from the model files (auto_map); "
            "pass --trust-remote-code if you trust that code"
        ) from exc


def make_lm(model: Any, tokenizer: Any, *, batch_size: int, max_length: int) -> LM:
    """lm-eval's HF model class as v1 ran it (evalsuite.engine.v1_hflm: answers in parts, v1's truncation
    arithmetic), set up as v1 ran: no BOS, batch 1 by default, v1's max length."""
    import logging

    from evalsuite.engine.v1_hflm import V1HFLM

    # HFLM warns that a pre-loaded model ignores its loading options: intended, we load it ourselves.
    lm_eval_logger = logging.getLogger("lm_eval")
    level = lm_eval_logger.level
    lm_eval_logger.setLevel(logging.ERROR)
    try:
        return V1HFLM(
            pretrained=model,
            tokenizer=tokenizer,
            backend="causal",
            batch_size=batch_size,
            max_length=max_length,
            add_bos_token=False,  # v1 never added a BOS token; lm-eval >= 0.4.9.2 would for Llama tokenizers
        )
    finally:
        lm_eval_logger.setLevel(level)
