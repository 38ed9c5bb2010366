"""Feed-forward work only where its result is read: the real positions of a pass, and in the last layer
only the scored ones.

Nothing reads a padding position's output (real positions never attend to padding, and no cache keeps
it). In the last layer, a position's feed-forward output reaches only its own logits, and those are
computed only where a continuation token is scored; the keys and values that later positions read are
made before the feed-forward. So, while installed, each layer's feed-forward runs on those positions
alone and the others get zeros: for a mixture of experts its experts (after the router, which still
sees, and router statistics still count, every position), for a dense model its MLP. The saving is
the padding, plus about one layer's feed-forward on every unscored position.

A model whose layers are not laid out as transformers lays out Llama, Mixtral and their kin
(`model.layers[i].mlp`, with `.experts` for a mixture), or whose feed-forward takes inputs of another
shape or does not give back one hidden state per position, simply runs in full: each module is first
run in full once and checked, and the result never depends on the hooks firing.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

# (real, scored) of the pass running: flat bool tensors over its (rows × width) positions.
_SELECTED: ContextVar[tuple[Any, Any] | None] = ContextVar("evalsuite_feed_forward_positions", default=None)
# Per module: whether its output was found to be one hidden state per position of its first input.
_CHECKED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def selecting(real: Any, scored: Any) -> Iterator[None]:
    """Within the block, the installed feed-forwards run on `real` positions, the last layer's on `scored`
    ones ((rows, width) bool tensors on the model's device, scored within real)."""
    token = _SELECTED.set((real.reshape(-1), scored.reshape(-1)))
    try:
        yield
    finally:
        _SELECTED.reset(token)


def feed_forwards(model: Any) -> list[Any]:
    """Per decoder layer, its feed-forward module: a mixture's experts, else the MLP; [] for another layout."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if layers is None:
        return []
    modules = []
    for layer in layers:
        mlp = getattr(layer, "mlp", None)
        if mlp is None:
            return []
        modules.append(getattr(mlp, "experts", mlp))
    return modules


@dataclass
class _Subset:
    index: Any  # flat positions kept
    shape: tuple[int, ...]  # of the full output


@dataclass
class _Probe:
    shape: tuple[int, ...]  # of the input, which the output must have


class _Hooks:
    def __init__(self, last: bool) -> None:
        self.last = last
        self.pending: list[_Subset | _Probe | None] = []

    def before(self, module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        selected = _SELECTED.get()
        if selected is None or not args or not hasattr(args[0], "shape") or _CHECKED.get(module) is False:
            self.pending.append(None)
            return None
        if module not in _CHECKED:  # the first call runs in full, to check what the module gives back
            self.pending.append(_Probe(tuple(args[0].shape)))
            return None
        keep = selected[1] if self.last else selected[0]
        hidden = args[0]
        positions = keep.numel()
        if hidden.dim() == 3 and hidden.shape[0] * hidden.shape[1] == positions and len(args) == 1:
            flat = hidden.reshape(positions, hidden.shape[-1])  # a dense MLP: (rows, width, hidden)
            picked = _picked(keep)
            self.pending.append(_Subset(picked, tuple(hidden.shape)))
            return (flat[picked][None],)
        if hidden.dim() != 2 or hidden.shape[0] != positions:
            self.pending.append(None)
            return None
        # A mixture's experts: the flat positions and, aligned with them, the router's picks and weights.
        picked = _picked(keep)
        self.pending.append(_Subset(picked, tuple(hidden.shape)))
        return tuple(a[picked] if hasattr(a, "shape") and a.dim() and a.shape[0] == positions else a for a in args)

    def after(self, module: Any, args: tuple[Any, ...], output: Any) -> Any:
        subset = self.pending.pop()
        if isinstance(subset, _Probe):
            _CHECKED[module] = hasattr(output, "shape") and tuple(output.shape) == subset.shape
            return None
        if subset is None:
            return None
        full = output.new_zeros(subset.shape)
        full.view(-1, subset.shape[-1])[subset.index] = output.reshape(-1, subset.shape[-1])
        return full


def _picked(keep: Any) -> Any:
    """The kept flat positions; at least one, so that the module never runs on an empty input."""
    index = keep.nonzero().squeeze(1)
    return index if index.numel() else keep.new_zeros(1, dtype=index.dtype)


@contextlib.contextmanager
def installed(model: Any) -> Iterator[None]:
    """Hooks on every layer's feed-forward, active only within `selecting`."""
    modules = feed_forwards(model)
    handles = []
    try:
        for i, module in enumerate(modules):
            hooks = _Hooks(last=i == len(modules) - 1)
            handles.append(module.register_forward_pre_hook(hooks.before))
            handles.append(module.register_forward_hook(hooks.after))
        yield
    finally:
        for handle in handles:
            handle.remove()
