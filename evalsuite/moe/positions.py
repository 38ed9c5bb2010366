"""The real token positions of the forward pass about to run, published by a backend that builds its own batches.

A backend that pads its batches (or keeps feeding rows that have finished) knows which positions are real;
observers of the model's forward passes (router statistics) read them here instead of guessing from the
inputs. Nothing is published by backends that leave batching to lm-eval.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_REAL: ContextVar[Any] = ContextVar("evalsuite_real_positions", default=None)


@contextlib.contextmanager
def publish(real: Any) -> Iterator[None]:
    """Within the block, `current()` is `real`: a (batch, length) bool tensor of the positions fed."""
    token = _REAL.set(real)
    try:
        yield
    finally:
        _REAL.reset(token)


def current() -> Any:
    """The published (batch, length) bool tensor of real positions, or None when none is published."""
    return _REAL.get()
