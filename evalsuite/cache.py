"""Where evalsuite keeps what it can rebuild (the demo model, merged models, file digests):
`$EVALSUITE_CACHE`, else `~/.cache/evalsuite`. Deleting it loses nothing but time."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EVALSUITE_CACHE"
DEFAULT_CACHE = "~/.cache/evalsuite"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser().resolve()
