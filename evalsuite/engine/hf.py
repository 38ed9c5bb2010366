"""The "hf" backend: transformers AutoModelForCausalLM placed by accelerate, wrapped in lm-eval's HFLM
as v1 ran it (the contract it fulfils: evalsuite.engine.base)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from evalsuite.checks.weights import check_loading
from evalsuite.engine.base import Backend, BackendOptions, CostMeter, CostReading, RouterCounter, engine_name
from evalsuite.engine.model_files import ModelFiles, refuse_custom_code
from evalsuite.errors import ConfigError, ModelError, one_line
from evalsuite.paths import display_path
from evalsuite.results import ModelInfo

if TYPE_CHECKING:
    from lm_eval.api.model import LM


class FedPositions:
    """A CostMeter of the positions fed to a torch module (an exact path: all real at batch size 1, v1's
    setting; padding included at larger batch sizes); it keeps no inputs."""

    def __init__(self, module: Any) -> None:
        self.fed = 0
        self._hook = module.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and hasattr(ids, "numel"):
            self.fed += int(ids.numel())

    def reading(self) -> CostReading:
        return CostReading(self.fed, self.fed)

    def take_inputs(self) -> None:
        return None

    def close(self) -> None:
        self._hook.remove()


@dataclass
class HFBackend(Backend):
    """A loaded transformers model behind lm-eval's HFLM."""

    lm: LM
    info: ModelInfo
    module: Any  # the transformers model: its forward passes are metered and its routers counted
    _hooks: list[Any] = field(default_factory=list, repr=False)

    def meter(self) -> CostMeter | None:
        """Positions fed to the model, padding included (all real at batch size 1, v1's setting)."""
        meter = FedPositions(self.module)
        self._hooks.append(meter)
        return meter

    def router_counter(self) -> RouterCounter | None:
        from evalsuite.moe.recorder import recorder_for

        recorder = recorder_for(self.module)
        if recorder is not None:
            self._hooks.append(recorder)
        return recorder

    def close(self) -> None:
        """Remove the hooks the meter and the router counter hold on the model."""
        for hooked in self._hooks:
            hooked.close()
        self._hooks.clear()


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


def load(opts: BackendOptions, files: ModelFiles) -> HFBackend:
    """Load the model and wrap it as v1 ran (the one entry point of this backend)."""
    model, info = load_model(opts, files)
    lm = make_lm(model, files.tokenizer, batch_size=opts.batch_size or 1, max_length=files.max_length)
    return HFBackend(lm=lm, info=replace(info, engine=engine_name(lm)), module=model)


def load_model(opts: BackendOptions, files: ModelFiles) -> tuple[Any, ModelInfo]:
    """Load the transformers model of `files`; returns it with the ModelInfo to record."""
    import logging

    import transformers

    path, config = files.directory, files.config
    device_map, on_gpu = _placement(opts.device)
    if opts.threads is not None or not on_gpu:
        from evalsuite.engine import threads

        threads.choose(opts.threads)
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
        refuse_custom_code(exc, path, "model", opts.trust_remote_code)
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
        commit=files.commit,
        architecture=(config.architectures or [type(model).__name__])[0],
        dtype=str(model.dtype).replace("torch.", ""),  # what it really computes in
        devices=tuple(devices),
        batch_size=opts.batch_size or 1,
        max_length=files.max_length,
        num_parameters=sum(p.numel() for p in model.parameters()),
        weights_sha256=dict(files.weights_sha256),
        weights_not_loaded=weights_not_loaded,
    )
    return model, info


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
