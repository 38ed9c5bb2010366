"""A backend around any backend: its `lm` answers from the run's store, persists each new answer as it
completes, and stops at the first non-finite log-likelihood; everything else is the inner backend's.

Backends that report answers through lm-eval's cache hook (HFLM does, one request at a time; the fast
backend as each request completes) have each answer persisted the moment it exists, and passed on to the
wrapper's own hook; for the others, every answer of a call is persisted when the call returns, and a
call is never bigger than what the pipeline hands over (a few hundred requests).

The pipeline may make several calls at once (a backend whose `calls.in_flight` is above one, e.g.
data-parallel replicas): the wrapper keeps each call's bookkeeping in its own thread, and guards the
store with a lock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from evalsuite.engine.base import Backend, Calls, WrappingBackend
from evalsuite.errors import NonFiniteAnswer
from evalsuite.resume.store import AnswerStore, request_key

__all__ = ["ResumableBackend", "resumable"]

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance
    from lm_eval.api.model import LM

    from evalsuite.benchmarks.contract import Request


def _loglikelihood_of(request_type: str, answer: Any) -> float | None:
    if request_type == "loglikelihood":
        return float(answer[0])
    if request_type == "loglikelihood_rolling":
        return float(answer)
    return None


class _Hook:
    """lm-eval's CacheHook interface: backends call `add_partial` with each answer as it completes."""

    def __init__(self, owner: ResumableLM) -> None:
        self.owner = owner

    def add_partial(self, attr: str, req: Iterable[Any], res: Any) -> None:
        self.owner._arrive(attr, request_key(self.owner.digest, attr, req), res, from_hook=True)


class ResumableBackend(WrappingBackend):
    """`inner` with its `lm` behind the store; every other member is the inner backend's."""

    def __init__(self, inner: Backend, store: AnswerStore) -> None:
        super().__init__(inner)
        self.store = store
        self.lm = resumable(inner.lm, store, inner.calls)

    def answered(self, requests: Sequence[Request]) -> set[int]:
        """The positions of the runner's requests the store holds answers for; for a backend that answers
        whole calls, only those of calls answered whole (the others are asked again)."""
        lm: Any = self.lm
        held = {i for i, r in enumerate(requests) if lm.answered(r.request_type, r.arguments)}
        if held and self.calls.whole:
            for _, part in self.calls.split([r.request_type for r in requests]):
                if not held.issuperset(part):
                    held.difference_update(part)
        return held


def resumable(inner: LM, store: AnswerStore, calls: Calls) -> LM:
    """`inner` behind the store, keyed by the store's fingerprint digest (an `LM` subclass, so lm-eval
    code accepts it too); `calls`: how the pipeline calls it."""
    from lm_eval.api.model import LM

    class ResumableHarnessLM(ResumableLM, LM):
        pass

    return ResumableHarnessLM(inner, store, calls)


class _Call(threading.local):
    """The running call of this thread: the keys it asked for, and those answered so far."""

    expected: frozenset[str] = frozenset()  # hook answers outside it are ignored
    arguments: dict[str, tuple[Any, ...]]
    delivered: set[str]

    def __init__(self) -> None:
        self.arguments, self.delivered = {}, set()


class ResumableLM:
    """The wrapper's behaviour; `resumable` makes it an `LM` (lm_eval is imported only then)."""

    cache_hook: Any  # lm-eval's LM sets it: whoever hooks this LM (the pipeline's progress bar)

    def __init__(self, inner: Any, store: AnswerStore, calls: Calls) -> None:
        super().__init__()
        self.inner = inner
        self.store = store
        self.whole = calls.whole  # a partly answered call goes to the backend whole
        self.digest = store.digest
        # What an earlier attempt answered is skipped; within this attempt every call goes to the backend
        # as the pipeline makes it (less repeats inside it), whichever other calls are in flight, so the
        # forward passes (and the router counts) do not depend on how concurrent calls interleave.
        self.earlier = frozenset(store.answers)
        self._call_state = _Call()
        self._lock = threading.Lock()  # the store, shared by concurrent calls
        inner.set_cache_hook(_Hook(self))

    def answered(self, request_type: str, arguments: Sequence[Any]) -> bool:
        # a fresh run has nothing stored: no key to compute (a full run asks this of ~100K requests)
        return bool(self.earlier) and request_key(self.digest, request_type, arguments) in self.earlier

    def _arrive(self, request_type: str, key: str, answer: Any, from_hook: bool = False) -> None:
        """One answer from the backend (through the hook as it completes, or when the call returns)."""
        call = self._call_state
        if key in call.delivered or (from_hook and key not in call.expected):
            return
        call.delivered.add(key)
        ll = _loglikelihood_of(request_type, answer)
        if ll is not None and not math.isfinite(ll):
            raise NonFiniteAnswer(request_type, call.arguments.get(key, ()), ll)
        with self._lock:
            self.store.put(key, list(answer) if isinstance(answer, tuple) else answer)
        # passed on to whoever hooks this LM (the pipeline's progress bar)
        self.cache_hook.add_partial(request_type, call.arguments.get(key, ()), answer)

    def _call(self, request_type: str, instances: list[Instance], kwargs: dict[str, Any]) -> list[Any]:
        keys = [request_key(self.digest, request_type, inst.args) for inst in instances]
        # A backend that batches across the call gets a partly answered call whole: batched as it was.
        whole = self.whole and not all(key in self.earlier for key in keys)
        todo: dict[str, Instance] = {}
        for key, inst in zip(keys, instances, strict=True):
            if whole or key not in self.earlier:
                todo.setdefault(key, inst)  # a request asked twice in one call is answered once
        fresh: dict[str, Any] = {}
        if todo:
            call = self._call_state
            call.expected, call.delivered = frozenset(todo), set()
            call.arguments = {key: inst.args for key, inst in todo.items()}
            try:
                answers = getattr(self.inner, request_type)(list(todo.values()), **kwargs)
                for key, answer in zip(todo, answers, strict=True):
                    self._arrive(request_type, key, answer)
                    fresh[key] = answer
            finally:
                call.expected = frozenset()
        with self._lock:  # the earlier attempt's answers never change: only the reads need the lock
            return [fresh[key] if key in fresh else _decode(request_type, self.store.get(key)) for key in keys]

    def loglikelihood(self, requests: list[Instance], **kwargs: Any) -> list[tuple[float, bool]]:
        return self._call("loglikelihood", requests, kwargs)

    def loglikelihood_rolling(self, requests: list[Instance], **kwargs: Any) -> list[float]:
        return self._call("loglikelihood_rolling", requests, kwargs)

    def generate_until(self, requests: list[Instance], **kwargs: Any) -> list[str]:
        return self._call("generate_until", requests, kwargs)


def _decode(request_type: str, stored: Any) -> Any:
    if request_type == "loglikelihood":
        return (float(stored[0]), bool(stored[1]))
    if request_type == "loglikelihood_rolling":
        return float(stored)
    return stored
