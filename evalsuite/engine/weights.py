"""The sha256 of a local model's weight files, recorded in results.json: a local directory's name says
nothing about what is in it, its weights do."""

from __future__ import annotations

import hashlib
from pathlib import Path

# The files transformers loads weights from (shards included); configs and tokenizers are not weights.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_CHUNK = 1 << 24


def weights_sha256(model_dir: str | Path) -> dict[str, str]:
    """File name -> sha256 hex digest of every weight file directly in `model_dir`, sorted by name."""
    out = {}
    for path in sorted(Path(model_dir).iterdir()):
        if path.is_file() and path.name.endswith(WEIGHT_SUFFIXES):
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
            out[path.name] = digest.hexdigest()
    return out
