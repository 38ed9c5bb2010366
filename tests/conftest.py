"""Shared fixtures: the v1 reference outputs, and real runs of evalsuite on tiny models."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

# A stray Hub call must fail fast, never hang (make test sets these too).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# What evalsuite caches (demo model, merges, file digests) goes to a directory of this session, not ~/.cache.
os.environ.setdefault("EVALSUITE_CACHE", tempfile.mkdtemp(prefix="evalsuite-test-cache-"))
# The test models are tiny: torch's intra-op threads only add synchronisation (5x slower on 2 cores).
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
# Reference outputs of the original v1 harness (its README says what they are), kept in the repo so
# that CI on a clean checkout has them.
GOLDEN = REPO / "tests" / "data" / "golden-v1"
# The reference models; tiny-moe-short has a 512-token context, shorter than many prompts.
GOLDEN_MODELS = ("tiny-moe", "tiny-llama", "tiny-moe-short")


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


def run_cli(*argv: str) -> int:
    """Run the evalsuite CLI in-process (no second torch import); returns the exit code."""
    from evalsuite.cli.main import main

    return main(list(argv))


def reference_run(tmp_path_factory: pytest.TempPathFactory, model: str, *extra: str) -> Path:
    """A complete run directory of a reference tiny model on the reference data (extra: more options)."""
    out = tmp_path_factory.mktemp("runs") / model
    code = run_cli(
        "run",
        "--model", str(GOLDEN / "models" / model),
        "--data-dir", str(GOLDEN / "data"),
        "--output-dir", str(out),
        "--no-progress",
        *extra,
    )  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference tiny MoE (with router statistics), 3 docs per task."""
    return reference_run(tmp_path_factory, "tiny-moe", "--limit", "3")


@pytest.fixture(scope="session")
def tiny_dense_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference dense Llama on the same documents as tiny_run, so the two compare pairwise."""
    return reference_run(tmp_path_factory, "tiny-llama", "--limit", "3")


@pytest.fixture(scope="session")
def golden_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`golden_runs(model)`: the model's run on all reference documents, as the reference was made (CPU,
    float32, batch size 1, the hf backend); each model runs at most once per session."""
    runs: dict[str, Path] = {}

    def get(model: str) -> Path:
        if model not in runs:
            runs[model] = reference_run(
                tmp_path_factory, model, "--device", "cpu", "--dtype", "float32", "--backend", "hf"
            )  # the bit-exact path
        return runs[model]

    return get
