"""mergekit-moe recipes: read one, and check it fully before any merge starts.

A recipe is mergekit-moe's YAML (base_model, experts with positive/negative prompts, gate_mode, ...).
Relative model paths are read relative to the recipe file, so a recipe and its models travel together.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.errors import RecipeError, one_line
from evalsuite.naming import card_model_name

# How mergekit-moe initialises the routers (mergekit.moe.router.get_gate_params).
GATE_MODES = ("hidden", "cheap_embed", "random", "uniform_random")
# Modes that route by the experts' prompts (the others draw random router weights).
PROMPTED_MODES = ("hidden", "cheap_embed")
DEFAULT_GATE_MODE = "hidden"  # mergekit's default
RECIPE_KEYS = ("base_model", "experts", "gate_mode", "dtype", "experts_per_token", "architecture")
EXPERT_KEYS = ("source_model", "positive_prompts", "negative_prompts", "noise_scale", "residual_scale")
# Config fields that must agree for experts to be stacked into one MoE layer and share the base's attention.
SHAPE_KEYS = ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size")
INSTALL_HINT = "install it with `pip install 'evalsuite[merge]'` (make install does)"
# What evalsuite.merge.build imports of mergekit.
MERGEKIT_MODULES = ("mergekit.merge", "mergekit.moe.config", "mergekit.scripts.moe")


@dataclass(frozen=True)
class Expert:
    source_model: str  # as the recipe names it
    model: str  # a resolved local directory or a Hub id
    positive_prompts: tuple[str, ...] = ()
    negative_prompts: tuple[str, ...] = ()
    noise_scale: float | None = None
    residual_scale: float | None = None

    @property
    def label(self) -> str:
        """A short name: the model's last path part."""
        return card_model_name(self.source_model)


@dataclass(frozen=True)
class Recipe:
    path: Path
    base_model: str  # resolved like Expert.model
    experts: tuple[Expert, ...]
    gate_mode: str = DEFAULT_GATE_MODE
    experts_per_token: int = 2
    dtype: str | None = None
    architecture: str | None = None

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def models(self) -> tuple[str, ...]:
        return (self.base_model, *(e.model for e in self.experts))

    def mergekit_config(self, gate_mode: str) -> dict[str, Any]:
        """The recipe as mergekit's MoEMergeConfig fields, with resolved model paths."""
        experts = [
            {
                "source_model": e.model,
                "positive_prompts": list(e.positive_prompts) or None,
                "negative_prompts": list(e.negative_prompts) or None,
                "noise_scale": e.noise_scale,
                "residual_scale": e.residual_scale,
            }
            for e in self.experts
        ]
        config = {
            "base_model": self.base_model,
            "experts": experts,
            "gate_mode": gate_mode,
            "experts_per_token": self.experts_per_token,
            "dtype": self.dtype,
            "architecture": self.architecture,
        }
        return {k: v for k, v in config.items() if v is not None}

    def digest(self) -> str:
        """Identifies what a merge is made of: the recipe (less the gate mode) and its source models' files."""
        h = hashlib.sha256()
        h.update(json.dumps(self.mergekit_config(""), sort_keys=True).encode())
        for model in dict.fromkeys(self.models):
            h.update(json.dumps(_model_fingerprint(model)).encode())
        return h.hexdigest()[:16]


def _model_fingerprint(model: str) -> list[Any]:
    """Name, size and modification time of each file of a local model (cheap, unlike hashing the weights:
    a re-trained expert changes it); a Hub id stands for itself."""
    path = Path(model)
    if not path.is_dir():
        return [model]
    return [
        [str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns]
        for f in sorted(path.rglob("*"))
        if f.is_file() and not f.name.startswith(".")
    ]


# --- reading -------------------------------------------------------------------------------------


def _where(path: Path, key: str) -> str:
    return f"{path}: {key}"


def _prompts(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise RecipeError(f"{where}: must be a list of non-empty prompt strings")
    return tuple(value)


def _scale(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecipeError(f"{where}: {value!r} is not a number")
    return float(value)


def _unknown(keys: Any, known: Sequence[str], where: str) -> None:
    extra = [str(k) for k in keys if k not in known]
    if extra:
        raise RecipeError(
            f"{where}: unknown key {', '.join(extra)}; the keys mergekit-moe reads are {', '.join(known)}"
        )


def _resolve(model: Any, recipe_dir: Path, where: str) -> str:
    from evalsuite.naming import is_local_path

    if not isinstance(model, str) or not model.strip():
        raise RecipeError(f"{where}: give a model directory or a Hub id (owner/name)")
    if not is_local_path(model) and not (recipe_dir / model).exists():
        return model  # a Hub id
    local = Path(model).expanduser()
    local = local if local.is_absolute() else recipe_dir / local
    if not local.is_dir():
        raise RecipeError(
            f"{where}: {model}: no such model directory (looked at {local}; relative paths are read "
            "relative to the recipe file)"
        )
    if not (local / "config.json").is_file():
        raise RecipeError(f"{where}: {local} holds no config.json; point at a transformers model directory")
    return str(local.resolve())


def _expert(raw: Any, index: int, path: Path) -> Expert:
    where = _where(path, f"experts[{index}]")
    if isinstance(raw, str):
        raw = {"source_model": raw}
    if not isinstance(raw, Mapping):
        raise RecipeError(f"{where}: must be a mapping with source_model and positive_prompts")
    _unknown(raw, EXPERT_KEYS, where)
    if "source_model" not in raw:
        raise RecipeError(f"{where}: has no source_model; name the expert's model directory or Hub id")
    return Expert(
        source_model=str(raw["source_model"]),
        model=_resolve(raw["source_model"], path.parent, f"{where}.source_model"),
        positive_prompts=_prompts(raw.get("positive_prompts"), f"{where}.positive_prompts"),
        negative_prompts=_prompts(raw.get("negative_prompts"), f"{where}.negative_prompts"),
        noise_scale=_scale(raw.get("noise_scale"), f"{where}.noise_scale"),
        residual_scale=_scale(raw.get("residual_scale"), f"{where}.residual_scale"),
    )


def check_gate_mode(mode: str, where: str = "") -> str:
    if mode not in GATE_MODES:
        prefix = f"{where}: " if where else ""
        raise RecipeError(f"{prefix}unknown gate mode {mode!r}; use one of {', '.join(GATE_MODES)}")
    return mode


def parse_gate_modes(text: str) -> tuple[str, ...]:
    """`hidden,cheap_embed` -> ("hidden", "cheap_embed"); each known, none twice."""
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if not modes:
        raise RecipeError(f"{text!r} names no gate mode; name one or more of {', '.join(GATE_MODES)}")
    for mode in modes:
        check_gate_mode(mode)
    if len(set(modes)) != len(modes):
        raise RecipeError(f"{text!r} names a gate mode twice")
    return modes


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe's structure and model paths (no model is loaded)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file; give a mergekit-moe YAML file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc}); fix the recipe file") from exc
    if not isinstance(raw, Mapping):
        raise RecipeError(f"{path}: must be a YAML mapping with base_model and experts")
    _unknown(raw, RECIPE_KEYS, str(path))
    for key in ("base_model", "experts"):
        if key not in raw:
            raise RecipeError(f"{path}: has no {key}; a mergekit-moe recipe names a base_model and its experts")
    if not isinstance(raw["experts"], list) or not raw["experts"]:
        raise RecipeError(f"{_where(path, 'experts')}: must be a non-empty list of experts")
    per_token = raw.get("experts_per_token", 2)
    if isinstance(per_token, bool) or not isinstance(per_token, int) or not 1 <= per_token <= len(raw["experts"]):
        raise RecipeError(
            f"{_where(path, 'experts_per_token')}: {per_token!r} must be a whole number from 1 to the "
            f"number of experts ({len(raw['experts'])})"
        )
    return Recipe(
        path=path,
        base_model=_resolve(raw["base_model"], path.parent, _where(path, "base_model")),
        experts=tuple(_expert(e, i, path) for i, e in enumerate(raw["experts"])),
        gate_mode=check_gate_mode(str(raw.get("gate_mode", DEFAULT_GATE_MODE)), _where(path, "gate_mode")),
        experts_per_token=per_token,
        dtype=None if raw.get("dtype") is None else str(raw["dtype"]),
        architecture=None if raw.get("architecture") is None else str(raw["architecture"]),
    )


# --- checks before merging -----------------------------------------------------------------------


def require_mergekit() -> None:
    """mergekit installed and importable (a broken install fails here, in one line, not in the merge)."""
    if importlib.util.find_spec("mergekit") is None:
        raise RecipeError(f"merging needs mergekit, which is not installed; {INSTALL_HINT}")
    try:
        for module in MERGEKIT_MODULES:
            importlib.import_module(module)
    except Exception as exc:  # ImportError, or whatever a broken dependency of it raises on import
        raise RecipeError(
            f"mergekit is installed but {module} cannot be imported ({type(exc).__name__}: {one_line(exc)[:200]}); "
            f"reinstall it: {INSTALL_HINT}"
        ) from None


def check_prompts(recipe: Recipe, gate_modes: Sequence[str]) -> None:
    """The prompt rules mergekit-moe enforces (by exiting), as one-line errors."""
    prompted = [m for m in gate_modes if m in PROMPTED_MODES]
    if prompted:
        for i, e in enumerate(recipe.experts):
            if not e.positive_prompts:
                raise RecipeError(
                    f"{_where(recipe.path, f'experts[{i}]')}: has no positive_prompts, which gate mode "
                    f"{prompted[0]} routes by; add prompts of the inputs this expert should get"
                )
        first = (recipe.experts[0].positive_prompts, recipe.experts[0].negative_prompts)
        if len(recipe.experts) > 1 and all((e.positive_prompts, e.negative_prompts) == first for e in recipe.experts):
            raise RecipeError(
                f"{recipe.path}: every expert has the same prompts, so gate mode {prompted[0]} cannot tell "
                "them apart; give each expert prompts of its own"
            )
    if len(recipe.experts) > 1 and len({e.model for e in recipe.experts}) == 1:
        raise RecipeError(f"{recipe.path}: every expert is the same model; name different expert models")


def _config(model: str, where: str, recipe_dir: Path, trust_remote_code: bool) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise RecipeError(
            f"{where}: {model} is not a model directory (relative paths are read from {recipe_dir}) nor a "
            f"Hub model that can be read ({exc}); fix the path or the Hub id"
        ) from exc


def _tokenizer_identity(model: str, trust_remote_code: bool) -> tuple[Any, ...]:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise RecipeError(f"{model}: its tokenizer cannot be loaded ({exc}); every model needs one") from exc
    return (tuple(sorted(tok.get_vocab().items())), tok.bos_token, tok.eos_token, tok.unk_token)


def check_models(recipe: Recipe, trust_remote_code: bool = False) -> None:
    """Every model loads its config and tokenizer; they share the architecture, shapes and vocabulary."""
    base = _config(recipe.base_model, _where(recipe.path, "base_model"), recipe.path.parent, trust_remote_code)
    base_tok = _tokenizer_identity(recipe.base_model, trust_remote_code)
    for i, e in enumerate(recipe.experts):
        where = _where(recipe.path, f"experts[{i}] ({e.source_model})")
        config = _config(e.model, where, recipe.path.parent, trust_remote_code)
        for key in SHAPE_KEYS:
            ours, theirs = getattr(config, key, None), getattr(base, key, None)
            if ours != theirs:
                raise RecipeError(
                    f"{where}: {key} is {ours!r}, the base model's {theirs!r}; the experts of an MoE merge "
                    "must share the base model's architecture"
                )
        if _tokenizer_identity(e.model, trust_remote_code) != base_tok:
            raise RecipeError(
                f"{where}: its tokenizer differs from the base model's (vocabulary or special tokens); "
                "merge experts fine-tuned from the same base"
            )


def validate(path: str | Path, gate_modes: Sequence[str] | None, trust_remote_code: bool = False) -> Recipe:
    """Every check, cheapest first; returns the recipe. Nothing is merged or written."""
    recipe = load_recipe(path)
    check_prompts(recipe, gate_modes or (recipe.gate_mode,))
    require_mergekit()
    check_models(recipe, trust_remote_code)
    return recipe
