"""Merging a recipe with mergekit-moe's Python API, once per gate mode, into a cache keyed by the recipe.

`$EVALSUITE_CACHE/merge/<recipe digest>/<recipe name>-<gate mode>/`: a merge appears there only by an
atomic rename of a finished build, so a directory that exists is complete and is reused as it is.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from evalsuite.cache import cache_root
from evalsuite.errors import RecipeError
from evalsuite.fsio import atomic_write_json, build_dir_once
from evalsuite.merge.recipe import Recipe

# The random gate modes and experts' noise_scale draw from torch's generator: seeded, so that a merge
# is the same every time it is built.
MERGE_SEED = 0
MERGE_INFO = "evalsuite-merge.json"  # written into each merged model directory


@dataclass(frozen=True)
class Variant:
    """One merge of the recipe: its gate mode and where the merged model lies."""

    gate_mode: str
    model_dir: Path
    digest: str
    seed: int = MERGE_SEED
    reused: bool = False  # found in the cache rather than built now
    warnings: tuple[str, ...] | None = ()  # what mergekit-moe warned of while merging it (kept with the
    # merge; None: a merge cached by an older version, which did not keep them)


def cache_dir(recipe: Recipe, gate_mode: str) -> Path:
    return cache_root() / "merge" / recipe.digest() / f"{recipe.name}-{gate_mode}"


class _Warnings(logging.Handler):
    """The warnings mergekit-moe logs while it merges (e.g. degenerate routing parameters)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not (record.name == "root" or record.name.startswith("mergekit")):  # other libraries' are not its
            return
        message = record.getMessage().strip()
        if message and message not in self.messages:
            self.messages.append(message)


def _merge(recipe: Recipe, gate_mode: str, out: Path, device: str, seed: int) -> list[str]:
    import torch
    from mergekit.merge import MergeOptions
    from mergekit.moe.config import MoEMergeConfig
    from mergekit.scripts.moe import build

    config = MoEMergeConfig.model_validate(recipe.mergekit_config(gate_mode))
    options = MergeOptions(device=device, quiet=True)
    warned = _Warnings()
    logging.getLogger().addHandler(warned)  # mergekit-moe logs on the root logger
    # A local generator state: the caller's RNG is untouched, and the same seed gives the same routers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            build(config, out_path=str(out), merge_options=options, device=device)
        except SystemExit as exc:  # mergekit-moe logs why, then exits (e.g. no MoE architecture fits the models)
            raise RecipeError(
                f"{recipe.path}: mergekit-moe refused it with gate mode {gate_mode} (its reasons are logged "
                "above); check the models' architecture against mergekit-moe's Mixtral, Qwen and DeepSeek outputs"
            ) from exc
        finally:
            logging.getLogger().removeHandler(warned)
    return warned.messages


def build_variant(recipe: Recipe, gate_mode: str, device: str = "cpu") -> Variant:
    """The merged model for one gate mode: from the cache, or merged now (the recipe must be validated)."""
    digest, seed = recipe.digest(), MERGE_SEED
    final = cache_dir(recipe, gate_mode)
    reused = final.is_dir()

    def merge_into(tmp: Path) -> None:
        warnings = _merge(recipe, gate_mode, tmp, device, seed)
        info = {
            "recipe": str(recipe.path.resolve()),
            "recipe_digest": digest,
            "gate_mode": gate_mode,
            "seed": seed,
            "mergekit": recipe.mergekit_config(gate_mode),
            "mergekit_version": metadata.version("mergekit"),
            "mergekit_warnings": warnings,
        }
        atomic_write_json(tmp / MERGE_INFO, info)

    model_dir = build_dir_once(final, merge_into)
    try:
        info = json.loads((model_dir / MERGE_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecipeError(
            f"{model_dir / MERGE_INFO}: unreadable ({exc}); delete {model_dir} to merge it again"
        ) from None
    recorded = info.get("mergekit_warnings")
    warnings = None if recorded is None else tuple(recorded)
    return Variant(gate_mode, model_dir, digest, seed, reused=reused, warnings=warnings)
