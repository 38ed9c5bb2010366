"""Model engines: the contract a backend fulfils (base) and the backends, picked by name.

A backend is a module with `load(options: BackendOptions) -> Backend`; registering one is one line in
BACKENDS. Modules are imported only when picked, so the heavy libraries stay out of `--help`.
"""

from __future__ import annotations

import importlib

from evalsuite.engine.base import Backend, BackendOptions
from evalsuite.errors import ConfigError

# name -> module holding `load(options) -> Backend`
BACKENDS: dict[str, str] = {
    "hf": "evalsuite.engine.hf",  # transformers + lm-eval's HFLM: the v1 reference
    "fast": "evalsuite.engine.fast",  # the same requests, each shared prefix computed once
    "vllm": "evalsuite.engine.vllm",  # lm-eval's vLLM class, GPU only (evalsuite[vllm])
}


def load_backend(options: BackendOptions) -> Backend:
    """Load the model with the backend `options.backend` names; the one load-and-wrap assembly."""
    try:
        module = BACKENDS[options.backend]
    except KeyError:
        raise ConfigError(f"backend {options.backend!r} is unknown; use one of: {', '.join(BACKENDS)}") from None
    backend: Backend = importlib.import_module(module).load(options)
    return backend


__all__ = ["BACKENDS", "Backend", "BackendOptions", "load_backend"]
