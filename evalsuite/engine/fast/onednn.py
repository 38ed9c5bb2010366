"""Float32 matrix products on CPU through oneDNN instead of MKL, while the fast backend's passes run.

torch computes a float32 `nn.Linear` on CPU with MKL's sgemm. On a CPU that MKL does not tune for
(measured on an AMD EPYC, Zen 5) that reaches half of what oneDNN's inner product reaches on the
same core, and less for the few rows per expert of a decoding step: there MKL packs the whole weight
matrix at every call. oneDNN with the weights laid out once in its blocked format (prepacked) is 3×
faster at 6 rows per expert and 2× at prompt-pass sizes (bench/RESULTS.md). So, within `installed`,
the model's float32 `nn.Linear` layers and its mixture's experts (transformers' expert modules: the
routing, gating and weighting are theirs, each expert's rows go through oneDNN) compute with oneDNN,
on weights prepacked when a copy fits in memory, else on the model's own. Matrices of fewer than
MIN_WEIGHTS weights (the tiny reference models' layers) stay with torch: there oneDNN's higher fixed
cost per call outweighs its arithmetic. The model itself is not changed (the exact path keeps using it
as lm-eval does). Nothing changes on a GPU, in reduced precision (torch already takes oneDNN there) or
without oneDNN. Rounding differs from MKL's as another batching does; each module's result is checked
against its own forward once (tests/test_engine_fast_onednn.py holds generations to the exact path's).
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Iterator
from typing import Any

# Below this many weights a matrix stays with torch: oneDNN's fixed cost per call (~20 µs against MKL's
# ~9) outweighs its faster arithmetic on small products (measured: 64-wide layers slower, 256-wide and
# wider faster at every row count).
MIN_WEIGHTS = 1 << 17
PACK_MEMORY_SHARE = 0.25  # prepacked copies of the weights only while they take at most this share of memory
PACK_ROWS = 8  # the row count oneDNN lays the packed weights out for (any row count runs on them)
_TOLERANCE = 1e-4  # relative, of a module's check against its own forward

# Per module: whether its oneDNN forward matched its own on the check.
_CHECKED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def available(model: Any) -> bool:
    """Whether `installed` changes anything for this model: float32 on CPU, with torch's oneDNN."""
    import torch

    weight = model.get_input_embeddings().weight
    return weight.device.type == "cpu" and weight.dtype == torch.float32 and torch.backends.mkldnn.is_available()


def _rows(n: int) -> int:
    """The row count a product of `n` rows runs at: oneDNN builds (and caches, up to 1024) a kernel per
    shape, 0.5 ms each, and a pass's row counts vary without end; rounded up to one of 16 steps per
    doubling above 32 rows (at most 1/16 more rows), a run needs a few hundred kernels."""
    if n <= 32:
        return n
    step = 1 << (n.bit_length() - 5)
    return -(-n // step) * step


def _linear(x: Any, weight: Any, bias: Any = None) -> Any:
    import torch

    rows = x.shape[:-1].numel()
    padded = _rows(rows)
    if padded == rows:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    flat = x.new_zeros((padded, x.shape[-1]))
    flat[:rows] = x.reshape(rows, -1)
    out = torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "")
    return out[:rows].reshape(*x.shape[:-1], out.shape[-1])


def _experts(module: Any) -> bool:
    """A transformers expert module (`use_experts_implementation`) whose layout is handled here."""
    return (
        all(hasattr(module, a) for a in ("has_gate", "has_bias", "is_transposed", "down_proj", "_apply_gate"))
        and not getattr(module, "has_post_expert_norm", False)
        and not getattr(module, "_is_expert_parallel", False)
        and getattr(module, "gate_up_proj" if module.has_gate else "up_proj", None) is not None
    )


class _Weights:
    """Each matrix as oneDNN takes it, (out features, in features): prepacked, or the model's own."""

    def __init__(self, pack: bool) -> None:
        self.pack = pack

    def __call__(self, matrix: Any, transposed: bool = False) -> Any:
        import torch

        matrix = matrix.t() if transposed else matrix
        if self.pack:
            return torch.ops.mkldnn._reorder_linear_weight(matrix.contiguous(), PACK_ROWS)
        return matrix.contiguous()


def _linear_forward(module: Any, weights: _Weights) -> Callable[[Any], Any]:
    weight = weights(module.weight)
    bias = module.bias

    def forward(x: Any) -> Any:
        return _linear(x, weight, bias)

    return forward


def _experts_forward(module: Any, weights: _Weights) -> Callable[[Any, Any, Any], Any]:
    """transformers' grouped experts forward (integrations.moe), each expert's matrix products by oneDNN."""
    import torch

    up_name = "gate_up_proj" if module.has_gate else "up_proj"
    ups = [weights(w, module.is_transposed) for w in getattr(module, up_name)]
    downs = [weights(w, module.is_transposed) for w in module.down_proj]
    up_bias = getattr(module, f"{up_name}_bias", None) if module.has_bias else None
    down_bias = getattr(module, "down_proj_bias", None) if module.has_bias else None
    experts = len(ups)

    def forward(hidden: Any, top_k_index: Any, top_k_weights: Any) -> Any:
        top_k = top_k_index.shape[-1]
        flat = top_k_index.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=experts).tolist()
        tokens = order // top_k
        scales = top_k_weights.reshape(-1)[order].unsqueeze(-1)
        out = torch.zeros_like(hidden)
        start = 0
        for e, n in enumerate(counts[:experts]):
            if not n:
                continue
            rows = tokens[start : start + n]
            projected = _linear(hidden[rows], ups[e], None if up_bias is None else up_bias[e])
            inner = module._apply_gate(projected) if module.has_gate else module.act_fn(projected)
            result = _linear(inner, downs[e], None if down_bias is None else down_bias[e])
            out.index_add_(0, rows, (result * scales[start : start + n]).to(out.dtype))
            start += n
        return out

    return forward


def _agrees(module: Any, forward: Callable[..., Any], example: tuple[Any, ...]) -> bool:
    import torch

    expected, got = module.forward(*example), forward(*example)
    scale = float(expected.abs().max()) or 1.0
    return (
        got.shape == expected.shape
        and bool(torch.isfinite(got).all())
        and float((got - expected).abs().max()) <= _TOLERANCE * scale
    )


def _example(module: Any, experts: bool) -> tuple[Any, ...]:
    """A few rows to check a module's oneDNN forward on (every expert picked, for a mixture)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    if not experts:
        return (torch.randn((3, module.in_features), generator=gen, dtype=module.weight.dtype),)
    count = len(module.down_proj)
    width = module.down_proj.shape[1] if not module.is_transposed else module.down_proj.shape[2]
    top_k = 2 if count > 1 else 1
    index = torch.stack([torch.arange(count), (torch.arange(count) + 1) % count], dim=1)[:, :top_k]
    scales = torch.rand((count, top_k), generator=gen)
    return torch.randn((count, width), generator=gen, dtype=module.down_proj.dtype), index, scales


def _weight_bytes(modules: list[tuple[Any, bool]]) -> int:
    total = 0
    for module, experts in modules:
        if experts:
            up = module.gate_up_proj if module.has_gate else module.up_proj
            total += up.numel() * up.element_size() + module.down_proj.numel() * module.down_proj.element_size()
        else:
            total += module.weight.numel() * module.weight.element_size()
    return total


def _fits(nbytes: int) -> bool:
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return False
    return nbytes <= PACK_MEMORY_SHARE * memory


def targets(model: Any) -> list[tuple[Any, bool]]:
    """The modules `installed` computes with oneDNN: (module, is a mixture's experts)."""
    import torch

    found = []
    for module in model.modules():
        if hasattr(module, "_hf_hook") or "forward" in vars(module):  # moved between devices, or already wrapped
            continue
        if type(module) is torch.nn.Linear:
            weight = module.weight
        elif _experts(module):
            weight = module.down_proj[0]
        else:
            continue
        if weight.dtype == torch.float32 and weight.numel() >= MIN_WEIGHTS:
            found.append((module, _experts(module)))
    return found


def describe(model: Any) -> str:
    """What computes the model's float32 matrix products in the fast backend's passes, for results.json."""
    modules = targets(model) if available(model) else []
    if not modules:
        return "torch's default"
    return "oneDNN, weights prepacked" if _fits(_weight_bytes(modules)) else "oneDNN"


@contextlib.contextmanager
def installed(model: Any) -> Iterator[None]:
    """Within the block, the model's float32 linear layers and experts compute with oneDNN (on CPU)."""
    import torch

    if not available(model):
        yield
        return
    modules = targets(model)
    weights = _Weights(pack=_fits(_weight_bytes(modules)))
    replaced = []
    try:
        with torch.no_grad():
            for module, experts in modules:
                if _CHECKED.get(module) is False:
                    continue
                forward = _experts_forward(module, weights) if experts else _linear_forward(module, weights)
                if module not in _CHECKED:
                    _CHECKED[module] = _agrees(module, forward, _example(module, experts))
                    if not _CHECKED[module]:
                        continue
                module.forward = forward
                replaced.append(module)
        yield
    finally:
        for module in replaced:
            del module.forward
