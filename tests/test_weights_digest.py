"""File digests are kept across processes (the cache file), and any change to a file hashes it again."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GOLDEN


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVALSUITE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "sha256.json"


def _digest_in_new_process(model_dir: Path) -> dict[str, str]:
    """weights_sha256 as another process (a replica, the next run) sees it."""
    code = (
        "import json, sys; from evalsuite.engine.weights import weights_sha256; "
        "print(json.dumps(weights_sha256(sys.argv[1])))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(model_dir)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def test_a_digest_is_read_from_the_cache_until_the_file_changes(tmp_path: Path, cache: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    weights = model / "model.safetensors"
    weights.write_bytes(b"first weights")
    true = hashlib.sha256(b"first weights").hexdigest()
    assert _digest_in_new_process(model) == {"model.safetensors": true}
    stored = json.loads(cache.read_text())
    assert list(stored.values()) == [true]
    # Another process takes the digest from the cache, not from the file: shown by a planted digest.
    cache.write_text(json.dumps(dict.fromkeys(stored, "0" * 64)))
    assert _digest_in_new_process(model) == {"model.safetensors": "0" * 64}
    # Rewritten with the same size and modification time: the change time moved, so it is hashed again.
    stat = weights.stat()
    weights.write_bytes(b"other weights")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _digest_in_new_process(model) == {"model.safetensors": hashlib.sha256(b"other weights").hexdigest()}


def test_an_unwritable_cache_only_costs_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("not a directory\n")
    monkeypatch.setenv("EVALSUITE_CACHE", str(tmp_path / "a-file" / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    assert _digest_in_new_process(model) == {"model.safetensors": hashlib.sha256(b"weights").hexdigest()}


def _model_with_weights_of(tmp_path: Path, name: str, megabytes: int) -> Path:
    """A copy of a tiny model whose weights take a few MB (the bar is of real reading)."""
    model = tmp_path / name
    shutil.copytree(GOLDEN / "models" / "tiny-moe-short", model)
    (model / "extra.safetensors").write_bytes(random.Random(megabytes).randbytes(megabytes << 20))
    return model


def test_hashing_a_model_shows_a_bar_of_the_bytes_read_on_stderr_only(
    tmp_path: Path, cache: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tqdm import tqdm

    from evalsuite.engine import weights
    from evalsuite.engine.base import BackendOptions
    from evalsuite.engine.model_files import resolve

    model = _model_with_weights_of(tmp_path, "model", 3)
    # Every file that decides the answers is read: the weights, configs and tokenizer files.
    hashed = sum(p.stat().st_size for p in model.iterdir() if p.suffix in {".safetensors", ".json"})
    assert hashed > 3 << 20
    resolve(BackendOptions(model=str(model)), progress=True)
    out, err = capfd.readouterr()
    done = tqdm.format_sizeof(hashed, divisor=1024)
    assert out == ""
    assert "hashing: 100%" in err and f"{done}/{done}" in err  # the bar's final state: every byte read
    # Digests known (this process's, then the cache file's, as the next run finds them): no bar.
    resolve(BackendOptions(model=str(model)), progress=True)
    monkeypatch.setattr(weights, "_DIGESTS", {})
    resolve(BackendOptions(model=str(model)), progress=True)
    assert capfd.readouterr() == ("", "")
    # --no-progress: nothing, though the files of another model are hashed.
    resolve(BackendOptions(model=str(_model_with_weights_of(tmp_path, "other", 2))), progress=False)
    assert capfd.readouterr() == ("", "")
