"""Typed results: the one place where run files (results.json, samples/*.jsonl) become dataclasses."""

from evalsuite.results.files import load_run, read_samples, require_run_dir, samples_path
from evalsuite.results.types import (
    RESULTS_FILE,
    SAMPLES_DIR,
    SCHEMA_VERSION,
    BenchmarkOutcome,
    BenchmarkScore,
    DocRecord,
    ModelInfo,
    Provenance,
    RequestRecord,
    RunResult,
)

__all__ = [
    "RESULTS_FILE",
    "SAMPLES_DIR",
    "SCHEMA_VERSION",
    "BenchmarkOutcome",
    "BenchmarkScore",
    "DocRecord",
    "ModelInfo",
    "Provenance",
    "RequestRecord",
    "RunResult",
    "load_run",
    "read_samples",
    "require_run_dir",
    "samples_path",
]
