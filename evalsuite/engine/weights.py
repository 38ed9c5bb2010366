"""The sha256 of a local model's files: its weights are recorded in results.json (a local directory's
name says nothing about what is in it, its weights do), and all the files that decide the answers key a
resumable run's stored answers (evalsuite.resume.fingerprint). One hashing for both: a file is read once
however often it is asked for, in this process and the next ones (data-parallel replicas, the next run):
digests are kept in `<cache>/sha256.json`, keyed by the file's path, size, modification and change
times and inode, so that any change to the file (its change time moves with every write) hashes it
again. A cache that cannot be read or written only costs the time of hashing. Hashing a large checkpoint
takes minutes: a progress bar of the bytes read shows it on stderr (never for digests the cache holds)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def file_sha256(path: Path, bar: Any = None) -> str:
    """A file's sha256, read in chunks (a shard of a large checkpoint never sits in memory whole);
    `bar` (a tqdm bar) moves by the bytes read."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
    return digest.hexdigest()


def paths_sha256(paths: Sequence[Path], progress: bool = False) -> dict[Path, str]:
    """Path -> sha256 of each file, from this process's digests or the cache file when it holds them (read
    once, and written once, per call); with `progress`, a bar of the bytes hashed while any are."""
    keys = {path: _key(path) for path in paths}
    unknown = [path for path in paths if keys[path] not in _DIGESTS]
    if unknown:
        stored = _stored()
        todo = [path for path in unknown if keys[path] not in stored]
        hashed = _hash(todo, progress) if todo else {}
        _DIGESTS.update({keys[path]: stored.get(keys[path]) or hashed[path] for path in unknown})
        if hashed:
            _store({keys[path]: digest for path, digest in hashed.items()})
    return {path: _DIGESTS[keys[path]] for path in paths}


def _hash(paths: Sequence[Path], progress: bool) -> dict[Path, str]:
    from tqdm.auto import tqdm

    total = sum(path.stat().st_size for path in paths)
    with tqdm(total=total, desc="hashing", unit="B", unit_scale=True, unit_divisor=1024, disable=not progress) as bar:
        return {path: file_sha256(path, bar) for path in paths}


def files_sha256(model_dir: str | Path, suffixes: tuple[str, ...], progress: bool = False) -> dict[str, str]:
    """File name -> sha256 hex digest of every file directly in `model_dir` whose name ends in one of
    `suffixes`, sorted by name."""
    paths = [p for p in sorted(Path(model_dir).iterdir()) if p.is_file() and p.name.endswith(suffixes)]
    return {path.name: digest for path, digest in paths_sha256(paths, progress).items()}


def weights_sha256(model_dir: str | Path) -> dict[str, str]:
    """The weight files' digests (what results.json records of a local model)."""
    return files_sha256(model_dir, WEIGHT_SUFFIXES)


def model_files_sha256(model_dir: str | Path, progress: bool = False) -> dict[str, str]:
    """The digests of every file that decides the answers: weights, configs, tokenizer, code."""
    return files_sha256(model_dir, MODEL_FILE_SUFFIXES, progress)
