"""Run directories: where a run goes, and writing it so that it is complete or absent, never half-written.

Everything is written into a hidden staging directory beside the target and renamed into place at
the end; a directory with `results.json` is a complete run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from evalsuite.errors import ConfigError, OutputExistsError
from evalsuite.fsio import unique_dir
from evalsuite.naming import model_slug
from evalsuite.resume.claim import stage_of

RESULTS_ROOT = Path("results")


def utc_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def default_output_dir(model: str, root: Path = RESULTS_ROOT, now: datetime | None = None, unique: bool = True) -> Path:
    """results/<model>/<timestamp>; unique=False for a caller that makes it unique as it claims it."""
    base = root / model_slug(model) / utc_stamp(now)
    return unique_dir(base) if unique else base


def check_output_dir(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        raise ConfigError(
            f"--output-dir {path}: is a symlink to {os.readlink(path)}, which does not exist; "
            "create its target or choose another directory"
        )
    if path.exists() and not path.is_dir():
        raise OutputExistsError(
            f"--output-dir {path}: is a file, not a directory; choose a new directory or leave --output-dir "
            "unset for results/<model>/<timestamp>"
        )
    if path.exists() and any(path.iterdir()):
        raise OutputExistsError(
            f"--output-dir {path}: already exists and is not empty (it may hold an earlier run); "
            "choose a new directory or leave --output-dir unset for results/<model>/<timestamp>"
        )
    # Checked up front so that an unusable location fails before the model time, not after it.
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--output-dir {path}: cannot be created, {ancestor} is not a writable directory; "
            "choose a location you can write to"
        )


@contextmanager
def staged(final: Path) -> Iterator[Path]:
    """Yield a staging directory; on success it becomes `final`, on failure it is removed."""
    check_output_dir(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = stage_of(final)
    if stage.exists():
        shutil.rmtree(stage)  # leftovers of an interrupted run of this same target
    stage.mkdir()
    try:
        yield stage
        check_output_dir(final)
        if final.exists():
            final.rmdir()  # an empty directory the user created for us
        stage.rename(final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
