"""The sha256 of a local model's files: its weights are recorded in results.json (a local directory's
name says nothing about what is in it, its weights do), and all the files that decide the answers key a
resumable run's stored answers (evalsuite.resume.fingerprint). One hashing for both: a file is read once
per process however often it is asked for."""

from __future__ import annotations

import hashlib
from pathlib import Path

# The files transformers loads weights from (shards included); configs and tokenizers are not weights.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
# Beside the weights, these decide the answers too: configs, tokenizer files, custom model code.
MODEL_FILE_SUFFIXES = (*WEIGHT_SUFFIXES, ".json", ".model", ".tiktoken", ".txt", ".py")
_CHUNK = 1 << 24
_DIGESTS: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime) -> hex digest


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def files_sha256(model_dir: str | Path, suffixes: tuple[str, ...]) -> dict[str, str]:
    """File name -> sha256 hex digest of every file directly in `model_dir` whose name ends in one of
    `suffixes`, sorted by name."""
    return {
        path.name: _sha256(path)
        for path in sorted(Path(model_dir).iterdir())
        if path.is_file() and path.name.endswith(suffixes)
    }


def weights_sha256(model_dir: str | Path) -> dict[str, str]:
    """The weight files' digests (what results.json records of a local model)."""
    return files_sha256(model_dir, WEIGHT_SUFFIXES)


def model_files_sha256(model_dir: str | Path) -> dict[str, str]:
    """The digests of every file that decides the answers: weights, configs, tokenizer, code."""
    return files_sha256(model_dir, MODEL_FILE_SUFFIXES)
