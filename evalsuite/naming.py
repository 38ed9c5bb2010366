"""How a model reference (a Hub id or a local directory) is named where it shows: in run directory
paths, in comparison rows and in a card's model-index. One rule decides which kind of reference it is."""

from __future__ import annotations

import os
import re
from pathlib import Path


def is_local_path(model: str) -> bool:
    """A model reference that names a directory rather than a Hub id (`owner/name` or `name`)."""
    return model.startswith((".", "/", "~")) or model.rstrip("/").count("/") > 1 or Path(model).expanduser().exists()


def model_slug(model: str) -> str:
    """For run directory paths: `org/name` -> `org__name` (the leaderboard's details-dataset style); a
    local dir -> its name."""
    # the absolute, normalised path: `--model ..` or `.` names the directory itself, never a path out of
    # results/ (symlinks are not followed: the name the user gave stays the name)
    if is_local_path(model):
        base = Path(os.path.normpath(Path(model).expanduser().absolute())).name
    else:
        base = model.replace("/", "__")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".") or "model"


def display_name(model: str) -> str:
    """For comparison rows: a Hub id whole (owner/name), a local path by its last part."""
    return Path(model.rstrip("/")).name if is_local_path(model) else model


def card_model_name(model: str) -> str:
    """For a card's model-index: the bare model name, as the leaderboard wrote it (`org/name` -> `name`)."""
    path = Path(model.rstrip("/\\"))
    return path.name or path.resolve().name
