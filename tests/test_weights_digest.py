"""File digests are kept across processes (the cache file), and any change to a file hashes it again."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


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
