"""Shared fixtures: the v1 reference outputs, and real runs of evalsuite on tiny models."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def as_backend(lm: Any, calls: Any = None, files: Any = None) -> Any:
    """An lm-eval `LM` of a test as a backend (evalsuite.engine.base.Backend): the contract's defaults,
    or the calls given."""
    from evalsuite.engine.base import Backend, Calls

    class TestBackend(Backend):
        pass

    backend = TestBackend()
    backend.lm = lm
    backend.calls = calls if calls is not None else Calls()
    return backend


def resolved(**options: Any) -> tuple[Any, Any]:
    """(BackendOptions, ModelFiles) of a model, resolved as the pipeline resolves it."""
    from evalsuite.engine.base import BackendOptions
    from evalsuite.engine.model_files import resolve

    opts = BackendOptions(**options)
    return opts, resolve(opts)


def load_backend_of(**options: Any) -> Any:
    """A backend loaded as the pipeline loads it (one process)."""
    from evalsuite.engine import load_backend

    opts, files = resolved(**options)
    return load_backend(opts, files)


def load_model_of(**options: Any) -> tuple[Any, Any, Any]:
    """(transformers model, tokenizer, ModelInfo) as the hf backend loads them."""
    from evalsuite.engine.hf import load_model

    opts, files = resolved(**options)
    model, info = load_model(opts, files)
    return model, files.tokenizer, info


def plugin_environment(where: Path, backends: dict[str, str]) -> dict[str, str]:
    """The environment of a process that has the test backends installed as another package would: a
    distribution in `where` declaring them as `evalsuite.backends` entry points (name -> module in tests/)."""
    dist = where / "evalsuite_test_backends-0.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evalsuite-test-backends\nVersion: 0.0\n")
    lines = "".join(f"{name} = {module}\n" for name, module in backends.items())
    (dist / "entry_points.txt").write_text(f"[evalsuite.backends]\n{lines}")
    path = os.pathsep.join([str(where), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path}
