"""Model engines: the contract a backend fulfils (base) and the backends, picked by name.

A backend is a module with `load(options: BackendOptions, files: ModelFiles) -> Backend`; registering one
is one line (evalsuite.engine.registry). Modules are imported only when picked, so the heavy libraries
stay out of `--help`. Data parallel is not a backend of its own: `load_backend` with more than
one replica returns N replicas of the named backend behind one (evalsuite.engine.parallel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalsuite.engine.base import Backend, BackendOptions, ParallelOptions
from evalsuite.engine.registry import BACKENDS, backend_module, backend_names, load_module_backend

if TYPE_CHECKING:
    from evalsuite.engine.model_files import ModelFiles


def load_backend(options: BackendOptions, files: ModelFiles, parallel: ParallelOptions | None = None) -> Backend:
    """Load the model with the backend `options.backend` names: in this process, or, with more than one
    replica in `parallel`, in replicas on Ray behind one backend. The one load assembly."""
    module = backend_module(options.backend)
    if parallel is not None and parallel.replicas > 1:
        from evalsuite.engine import parallel as data_parallel

        return data_parallel.load(module, options, files, parallel)
    return load_module_backend(module, options, files)


__all__ = ["BACKENDS", "Backend", "BackendOptions", "backend_module", "backend_names", "load_backend"]
