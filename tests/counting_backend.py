"""A backend for tests, registered like any other (an entry point or a line in the registry): the hf
backend, with every answer it reports written to the file named by LOG_ENV once the run has it.

One JSON line per answer: [where, request type, arguments], `where` being the data-parallel replica that
answered (its Ray actor name) or "" in one process. The tests read it to check that a resumed run asks
nothing twice, and to see which replica is answering.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM

from evalsuite.engine.base import Backend, BackendOptions, WrappingBackend
from evalsuite.engine.model_files import ModelFiles

LOG_ENV = "COUNTING_BACKEND_LOG"


def _where() -> str:
    try:
        import ray
    except ImportError:
        return ""
    if not ray.is_initialized():
        return ""
    return ray.get_runtime_context().get_actor_name() or ""


class CountingLM(LM):
    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner
        self.log = Path(os.environ[LOG_ENV])
        self.where = _where()
        inner.set_cache_hook(_Passing(self))

    def answered(self, request_type: str, arguments: Iterable[Any], answer: Any) -> None:
        self.cache_hook.add_partial(request_type, arguments, answer)  # first: the run keeps it
        line = json.dumps([self.where, request_type, list(arguments)], sort_keys=True)
        with self.log.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = True) -> list[Any]:
        return self.inner.loglikelihood(requests, disable_tqdm=disable_tqdm)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = True) -> list[Any]:
        return self.inner.generate_until(requests, disable_tqdm=disable_tqdm)

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        raise NotImplementedError


class _Passing:
    def __init__(self, owner: CountingLM) -> None:
        self.owner = owner

    def add_partial(self, attr: str, req: Iterable[Any], res: Any) -> None:
        self.owner.answered(attr, req, res)


class CountingBackend(WrappingBackend):
    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.lm = CountingLM(inner.lm)


def load(options: BackendOptions, files: ModelFiles) -> CountingBackend:
    from dataclasses import replace

    from evalsuite.engine import hf

    return CountingBackend(hf.load(replace(options, backend="hf"), files))
