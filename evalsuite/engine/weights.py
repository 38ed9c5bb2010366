"""The sha256 of a local model's files: its weights are recorded in results.json (a local directory's
name says nothing about what is in it, its weights do), and all the files that decide the answers key a
resumable run's stored answers (evalsuite.resume.fingerprint). One hashing for both: a file is read once
however often it is asked for, in this process and the next ones (data-parallel replicas, the next run):
digests are kept in `<cache>/sha256.json`, keyed by the file's path, size, modification and change
times and inode, so that any change to the file (its change time moves with every write) hashes it
again. A cache that cannot be read or written only costs the time of hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path

from evalsuite.cache import cache_root
from evalsuite.fsio import atomic_write_json

# The files transformers loads weights from (shards included); configs and tokenizers are not weights.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
# Beside the weights, these decide the answers too: configs, tokenizer files, custom model code.
MODEL_FILE_SUFFIXES = (*WEIGHT_SUFFIXES, ".json", ".model", ".tiktoken", ".txt", ".py")
_CHUNK = 1 << 24
CACHE_FILE = "sha256.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DIGESTS: dict[str, str] = {}  # file key -> hex digest, this process's


def _key(path: Path) -> str:
    stat = path.stat()
    return json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino])


def _stored() -> dict[str, str]:
    with contextlib.suppress(OSError, ValueError):
        stored = json.loads((cache_root() / CACHE_FILE).read_text(encoding="utf-8"))
        if isinstance(stored, dict):
            return {str(k): v for k, v in stored.items() if isinstance(v, str) and _HEX64.fullmatch(v)}
    return {}


def _store(new: dict[str, str]) -> None:
    """Add digests to the cache file (read again just before: other processes add theirs)."""
    with contextlib.suppress(OSError):
        cache_root().mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache_root() / CACHE_FILE, {**_stored(), **new})


def file_sha256(path: Path) -> str:
    """A file's sha256, read in chunks (a shard of a large checkpoint never sits in memory whole)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def files_sha256(model_dir: str | Path, suffixes: tuple[str, ...]) -> dict[str, str]:
    """File name -> sha256 hex digest of every file directly in `model_dir` whose name ends in one of
    `suffixes`, sorted by name. The cache file is read once, and written once, per call."""
    paths = [p for p in sorted(Path(model_dir).iterdir()) if p.is_file() and p.name.endswith(suffixes)]
    keys = {path: _key(path) for path in paths}
    unknown = [path for path in paths if keys[path] not in _DIGESTS]
    if unknown:
        stored = _stored()
        hashed = {keys[path]: file_sha256(path) for path in unknown if keys[path] not in stored}
        _DIGESTS.update({keys[path]: stored.get(keys[path]) or hashed[keys[path]] for path in unknown})
        if hashed:
            _store(hashed)
    return {path.name: _DIGESTS[keys[path]] for path in paths}


def weights_sha256(model_dir: str | Path) -> dict[str, str]:
    """The weight files' digests (what results.json records of a local model)."""
    return files_sha256(model_dir, WEIGHT_SUFFIXES)


def model_files_sha256(model_dir: str | Path) -> dict[str, str]:
    """The digests of every file that decides the answers: weights, configs, tokenizer, code."""
    return files_sha256(model_dir, MODEL_FILE_SUFFIXES)
