"""The load check: a checkpoint that lacks weights the architecture needs is partly random, and one
that carries weights the architecture does not use was probably merged or saved wrong. Both are
refused unless the user says they mean it."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from evalsuite.errors import ModelError

SHOWN = 5  # weight names shown in the error; the rest are counted
KINDS = {
    "missing_keys": "missing (would be randomly initialised)",
    "mismatched_keys": "of the wrong shape (would be randomly initialised)",
    "unexpected_keys": "unexpected (in the files, unused by the architecture)",
}


def _names(entries: Iterable[Any]) -> tuple[str, ...]:
    # mismatched keys come as (name, checkpoint shape, model shape)
    return tuple(sorted(e[0] if isinstance(e, tuple) else str(e) for e in entries))


def not_loaded(loading_info: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """transformers' loading info (`output_loading_info=True`) as {kind: weight names}, empty kinds left out."""
    found = {kind: _names(loading_info.get(kind) or ()) for kind in KINDS}
    return {kind: names for kind, names in found.items() if names}


def check_loading(loading_info: Mapping[str, Any], model_dir: Path, allow: bool) -> dict[str, tuple[str, ...]]:
    """The weights that were not loaded as they should; a ModelError naming them unless `allow`."""
    found = not_loaded(loading_info)
    if not found:
        return found
    parts = []
    for kind, names in found.items():
        more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
        parts.append(f"{len(names)} {KINDS[kind]}: {', '.join(names[:SHOWN])}{more}")
    what = f"model dir {model_dir}: the checkpoint does not match its config.json; weights {'; '.join(parts)}"
    if not allow:
        raise ModelError(
            f"{what}; fix the checkpoint, or pass --allow-missing-weights to score it anyway (recorded in results.json)"
        )
    print(f"warning: {what}; scoring it anyway (--allow-missing-weights, recorded in results.json)", file=sys.stderr)
    return found
