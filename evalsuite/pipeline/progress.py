"""The progress bar moved by each answer as the backend reports it, not only when its call returns.

Backends report each answer as it completes through lm-eval's cache hook (`add_partial`; the HF class
per request, the fast backend as each request's last token is scored, the resume wrapper passing on
what its backend reports). The ticker stands in for the LM's hook while one call at a time runs, keeps
calling the hook it replaced, and moves the bar by at most the number of fresh requests of the call;
the pipeline moves the bar by the rest when the call returns (answers a backend did not report, or
requests asked twice in one call and answered once).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class Ticker:
    """Stands in for `lm`'s cache hook (lm-eval's `LM.cache_hook` / `set_cache_hook`) while it is in place."""

    def __init__(self, lm: Any, bar: Any) -> None:
        self.lm = lm
        self.bar = bar
        self.replaced = lm.cache_hook
        self.left = 0  # of the running call
        lm.set_cache_hook(self)

    def add_partial(self, attr: str, req: Iterable[Any], res: Any) -> None:
        self.replaced.add_partial(attr, req, res)
        if self.left > 0:
            self.left -= 1
            self.bar.update(1)

    def expect(self, fresh: int) -> None:
        """A call of `fresh` requests not answered before starts."""
        self.left = fresh

    def finish(self) -> None:
        """The call returned: the bar takes what the hook did not report."""
        self.bar.update(self.left)
        self.left = 0

    def remove(self) -> None:
        self.lm.set_cache_hook(self.replaced)
