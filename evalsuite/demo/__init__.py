"""The embedded demo: a tiny random MoE built from a config, evaluated on synthetic data shipped here.

`evalsuite run --demo` (make eval without MODEL) runs it offline on CPU in well under a minute. The
same builder makes the tiny models the tests use; `python -m evalsuite.demo.generate` rewrites the data
and the tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from evalsuite.cache import cache_root
from evalsuite.errors import ConfigError
from evalsuite.fsio import build_dir_once
from evalsuite.pipeline.run import RunOptions

HERE = Path(__file__).resolve().parent
DEMO_DATA_DIR: Path = HERE / "data"
TOKENIZER_DIR = HERE / "tokenizer"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
DEMO_SEED: int = 1234
# The cache dir's basename: results/<model_slug>/... takes the run's default name from it.
DEMO_MODEL_NAME = "demo-tiny-moe"

Arch = Literal["mixtral", "llama"]

# Small enough to build in well under a second and run the six benchmarks on CPU in seconds;
# 4096 positions so that no few-shot prompt is truncated (ARC's 25 shots are the longest).
BASE_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "initializer_range": 0.2,  # wider than the usual 0.02, so that the random model's choices vary
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "dtype": "float32",
}
ARCH_CONFIGS: dict[str, dict[str, Any]] = {
    "mixtral": {
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "router_jitter_noise": 0.0,  # no noise: routing, and so every score, is deterministic
        "router_aux_loss_coef": 0.0,
        "output_router_logits": False,
    },
    "llama": {},
}


def model_config(arch: Arch = "mixtral", **overrides: Any) -> dict[str, Any]:
    """The config fields of a tiny model (the vocabulary and special tokens come from the tokenizer)."""
    if arch not in ARCH_CONFIGS:
        raise ConfigError(f"tiny model arch {arch!r} is not known; use one of {', '.join(ARCH_CONFIGS)}")
    return {**BASE_CONFIG, **ARCH_CONFIGS[arch], **overrides}


def _tokenizer_fields() -> dict[str, int]:
    from tokenizers import Tokenizer

    path = TOKENIZER_DIR / "tokenizer.json"
    tok = Tokenizer.from_file(str(path))
    fields = {"vocab_size": tok.get_vocab_size(with_added_tokens=True)}
    for name, token in (("bos", "<s>"), ("eos", "</s>"), ("pad", "<pad>")):
        token_id = tok.token_to_id(token)
        if token_id is None:
            raise ConfigError(f"{path}: has no {token} token; rewrite it with `python -m evalsuite.demo.generate`")
        fields[f"{name}_token_id"] = token_id
    return fields


def build_tiny_model(dest: Path, arch: Arch = "mixtral", seed: int = DEMO_SEED, **config_overrides: Any) -> Path:
    """Write a complete transformers model dir: float32 random weights from `seed`, the demo tokenizer."""
    import torch
    import transformers

    fields = {**_tokenizer_fields(), **model_config(arch, **config_overrides)}
    config = {"mixtral": transformers.MixtralConfig, "llama": transformers.LlamaConfig}[arch](**fields)
    # A local generator state: the same seed gives the same weights, and the caller's RNG is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # a one-shard "Writing model shards" bar is noise
    try:
        model.save_pretrained(dest)
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    for name in TOKENIZER_FILES:
        shutil.copyfile(TOKENIZER_DIR / name, dest / name)
    return dest


def _fingerprint() -> str:
    """Changes whenever the demo model would: its config, seed, tokenizer, or the libraries that init it."""
    h = hashlib.sha256()
    recipe = {
        "config": model_config("mixtral"),
        "seed": DEMO_SEED,
        "versions": {pkg: metadata.version(pkg) for pkg in ("torch", "transformers")},
    }
    h.update(json.dumps(recipe, sort_keys=True).encode())
    for name in TOKENIZER_FILES:
        h.update((TOKENIZER_DIR / name).read_bytes())
    return h.hexdigest()[:16]


def demo_model_dir() -> Path:
    """The demo MoE, built on first use into `$EVALSUITE_CACHE/demo/<fingerprint>/demo-tiny-moe`."""
    return build_dir_once(cache_root() / "demo" / _fingerprint() / DEMO_MODEL_NAME, build_tiny_model)


def run_options(data_dir: str | None = None, **common: Any) -> RunOptions:
    """RunOptions for `evalsuite run --demo`; `common` holds the other RunOptions fields from the CLI.

    One torch thread unless the user asked otherwise: for a model this small, intra-op threads only
    add synchronisation, and on a busy 2-core machine they made the demo 4-5 times slower (109 s vs 24 s).
    """
    if common.get("threads") is None and "OMP_NUM_THREADS" not in os.environ:
        common["threads"] = 1
    return RunOptions(
        model=str(demo_model_dir()),
        data_dir=str(data_dir or DEMO_DATA_DIR),
        smoke=True,
        extra_seeds=(("demo_model", DEMO_SEED),),
        **common,
    )
