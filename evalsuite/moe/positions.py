"""The real token positions of the forward pass about to run: the contract between the backends that feed a
model and the observers of its forward passes (router statistics).

Every backend that pads its batches, or keeps feeding rows that have finished, publishes which positions
of each pass are real (the fast backend, and lm-eval's HF class through evalsuite.engine.hflm_positions);
observers read them here and never guess from the inputs. Nothing published: every position is real.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

_REAL: ContextVar[Any] = ContextVar("evalsuite_real_positions", default=None)


@contextlib.contextmanager
def publish(real: Any) -> Iterator[Callable[[Any], None]]:
    """Within the block, `current()` is `real`: a (batch, length) bool tensor of the positions fed. Yields a
    function that publishes the positions of the passes that follow, for a block that runs several passes
    of different shapes (a generate call: the prompt, then one position per row and step)."""
    token = _REAL.set(real)

    def then(following: Any) -> None:
        _REAL.set(following)

    try:
        yield then
    finally:
        _REAL.reset(token)


def current() -> Any:
    """The published (batch, length) bool tensor of real positions, or None when none is published."""
    return _REAL.get()
