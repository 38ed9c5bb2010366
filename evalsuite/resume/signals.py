"""SIGTERM (what cluster schedulers send before they kill) and SIGINT (Ctrl-C) stop a run cleanly.

Both become an `Interrupted` exception in the main thread: the run unwinds, its store is synced, and
the staging directory stays behind for `--resume`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; `exit_code` is the shell's 128 + signal number."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def stop_cleanly() -> Iterator[None]:
    """While active, SIGTERM and SIGINT raise `Interrupted`; the previous handlers come back after.
    Outside the main thread (a run started from a thread of a bigger program) Python cannot set signal
    handlers: that program's handling stays, and an interrupted run is still resumable."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
