"""How many token positions one forward pass may hold, and what to do when the device runs out of memory.

The budget decides how requests are batched, and so the last bits of their log-likelihoods: it is decided
once, when the model loads, from what does not change while the process runs (on CPU the machine's
memory, not what is free at that moment), and recorded; a resumed run and every data-parallel replica
use the one recorded (evalsuite.resume, evalsuite.engine.parallel).
"""

from __future__ import annotations

import os
from typing import Any

# Never below: a smaller batch only adds per-pass overhead. Never above on CPU: larger matrices buy
# no more throughput there, only memory.
MIN_BATCH_TOKENS = 256
CPU_BATCH_TOKENS = 8192
GPU_MEMORY_SHARE = 0.5  # of the free memory after the weights: the rest is for the allocator and other users


def bytes_per_position(model: Any) -> int:
    """A position's memory: its keys and values in every layer, and the transient activations of the
    widest layer (the MLP's up-projection; with experts, per picked expert)."""
    config = _text_config(model)
    hidden = int(config.hidden_size)
    inner = int(getattr(config, "intermediate_size", None) or 4 * hidden)
    top_k = int(getattr(config, "num_experts_per_tok", None) or 1)
    activations = 8 * hidden + 3 * inner * top_k
    return next(model.parameters()).element_size() * (_kv_elements(config) + activations)


def _text_config(model: Any) -> Any:
    return model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config


def _kv_elements(config: Any) -> int:
    """A position's keys and values, in elements, over all layers."""
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or int(config.hidden_size) // heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    return 2 * int(config.num_hidden_layers) * kv_heads * head_dim


def default_max_batch_tokens(model: Any) -> int:
    """On a GPU, half its free memory (after the weights) in positions; on CPU, half the machine's
    memory, capped at CPU_BATCH_TOKENS (what happens to be free depends on the process's history and
    on other processes, and would make two runs batch differently)."""
    import torch

    device = next(model.parameters()).device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(MIN_BATCH_TOKENS, int(free * GPU_MEMORY_SHARE) // bytes_per_position(model))
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return CPU_BATCH_TOKENS
    return max(MIN_BATCH_TOKENS, min(CPU_BATCH_TOKENS, int(memory * GPU_MEMORY_SHARE) // bytes_per_position(model)))


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError)


def release_memory() -> None:
    """Hand cached blocks back after an out-of-memory error, so the smaller retry can use them."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def cache_positions(model: Any, max_batch_tokens: int) -> int:
    """Positions the decoding rows' KV cache may hold: half the memory of a pass of `max_batch_tokens`
    positions (the other half is for the passes that fill it), in keys and values only."""
    kv = _kv_elements(_text_config(model)) * next(model.parameters()).element_size()
    return max(1, max_batch_tokens * bytes_per_position(model) // (2 * kv))
