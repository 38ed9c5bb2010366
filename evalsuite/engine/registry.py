"""The backends by name: the built-in ones, and those other installed packages declare.

Registering a backend is one line: in BACKENDS below, or, for a backend of another package, an entry
point of the group `evalsuite.backends` (`name = "package.module"`). A backend module holds
`load(options: BackendOptions, files: ModelFiles) -> Backend` (evalsuite.engine.base).
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING

from evalsuite.errors import ConfigError

if TYPE_CHECKING:
    from evalsuite.engine.base import Backend, BackendOptions
    from evalsuite.engine.model_files import ModelFiles

# name -> module holding `load(options, files) -> Backend`
BACKENDS: dict[str, str] = {
    "hf": "evalsuite.engine.hf",  # transformers + lm-eval's HFLM: the v1 reference
    "fast": "evalsuite.engine.fast",  # the same requests, each shared prefix computed once
    "vllm": "evalsuite.engine.vllm",  # lm-eval's vLLM class, GPU only (evalsuite[vllm])
}
ENTRY_POINTS = "evalsuite.backends"


@functools.cache
def _installed() -> dict[str, str]:
    """Backends other installed packages declare (entry points of the group ENTRY_POINTS)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINTS)}


def backend_names() -> list[str]:
    """Every backend `--backend` may name: the built-in ones, then the installed ones."""
    return list(dict.fromkeys([*BACKENDS, *_installed()]))


def backend_module(name: str) -> str:
    """The module of the backend `name`; a ConfigError naming the known ones for an unknown name."""
    module = BACKENDS.get(name) or _installed().get(name)
    if module is None:
        raise ConfigError(f"backend {name!r} is unknown; use one of: {', '.join(backend_names())}")
    return module


def load_module_backend(module: str, options: BackendOptions, files: ModelFiles) -> Backend:
    """Load the model with the backend module `module` (a replica of data parallel loads this way)."""
    backend: Backend = importlib.import_module(module).load(options, files)
    return backend
