"""Run directories on disk: results.json and samples/<benchmark>.jsonl read back as typed results."""

from __future__ import annotations

import json
from pathlib import Path

from evalsuite.errors import RunDirError
from evalsuite.results.types import RESULTS_FILE, SAMPLES_DIR, DocRecord, RunResult


def require_run_dir(run_dir: str | Path) -> Path:
    """The path, when it is a directory; a one-line RunDirError otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory; pass a directory written by `evalsuite run`")
    return run_dir


def load_run(run_dir: str | Path) -> RunResult:
    """Read a complete run directory; a one-line RunDirError when it is not one."""
    run_dir = require_run_dir(run_dir)
    results = run_dir / RESULTS_FILE
    if not results.is_file():
        raise RunDirError(
            f"{run_dir}: not a complete run directory (no {RESULTS_FILE}); "
            "pass a directory written by `evalsuite run`, e.g. results/<model>/<timestamp>"
        )
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{results}: not valid JSON ({exc}); the run is damaged, re-run it") from exc
    return RunResult.from_dict(data, path=run_dir)


def samples_path(run_dir: Path, benchmark: str) -> Path:
    return Path(run_dir) / SAMPLES_DIR / f"{benchmark}.jsonl"


def read_samples(run_dir: str | Path, benchmark: str) -> list[DocRecord]:
    path = samples_path(Path(run_dir), benchmark)
    if not path.is_file():
        raise RunDirError(f"{path}: missing; this run did not evaluate {benchmark!r} or was damaged")
    records = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                records.append(DocRecord.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise RunDirError(
                    f"{path} line {n}: not a sample record ({type(exc).__name__}: {exc}); the file is truncated "
                    "or damaged: re-run the evaluation or restore the run directory"
                ) from exc
    return records
