"""Feed-forward work only where its result is read: the real positions of a pass, and in the last layer
only the scored ones.

Nothing reads a padding position's output (real positions never attend to padding, and no cache keeps
it). In the last layer, a position's feed-forward output reaches only its own logits, and those are
computed only where a continuation token is scored; the keys and values that later positions read are
made before the feed-forward. So, while installed, each layer's feed-forward runs on those positions
alone and the others get zeros: for a mixture of experts its experts (after the router, which still
sees, and router statistics still count, every position), for a dense model its MLP. The saving is
the padding, plus about one layer's feed-forward on every unscored position.

Only models whose code comes with transformers and whose layers are laid out as Llama, Mixtral and their
kin lay them out (`model.layers[i].mlp`, with `.experts` for a mixture; each layer its own module) are
hooked. A feed-forward that takes inputs of another shape, or does not give back one hidden state per
position, runs in full: each module is first run in full once and checked, by `probe` when the model
loads (a check on the first real pass would give that pass other rounding than the same pass later). Custom model code
(`--trust-remote-code`) always runs in full. The result never depends on the hooks firing.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

# Per module: whether its output was found to be one hidden state per position of its first input.
_CHECKED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class _Selection:
    positions: int  # of the pass: rows × width
    real: Any | None  # flat indices of the real positions; None when all are real
    scored: Any  # flat indices of the scored positions (at least one: a module never runs on nothing)


_SELECTED: ContextVar[_Selection | None] = ContextVar("evalsuite_feed_forward_positions", default=None)


@contextlib.contextmanager
def selecting(real: Any, scored: Any) -> Iterator[None]:
    """Within the block, the installed feed-forwards run on `real` positions, the last layer's on `scored`
    ones ((rows, width) bool tensors, scored within real)."""
    real, scored = real.reshape(-1), scored.reshape(-1)
    every = bool(real.all())
    token = _SELECTED.set(_Selection(real.numel(), None if every else _indices(real), _indices(scored)))
    try:
        yield
    finally:
        _SELECTED.reset(token)


def _indices(mask: Any) -> Any:
    index = mask.nonzero().squeeze(1)
    return index if index.numel() else index.new_zeros(1)


def feed_forwards(model: Any) -> list[Any]:
    """Per decoder layer, its feed-forward module: a mixture's experts, else the MLP; [] for another layout,
    for custom model code, or when layers share a module."""
    if not type(model).__module__.startswith("transformers.models."):
        return []
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
    if len({id(m) for m in modules}) < len(modules):
        return []
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

    def _plan(self, module: Any, args: tuple[Any, ...]) -> _Subset | _Probe | None:
        selected = _SELECTED.get()
        if selected is None or not args or not hasattr(args[0], "shape") or _CHECKED.get(module) is False:
            return None
        if module not in _CHECKED:  # the first call runs in full, to check what the module gives back
            return _Probe(tuple(args[0].shape))
        index = selected.scored if self.last else selected.real
        hidden = args[0]
        dense = hidden.dim() == 3 and len(args) == 1  # a dense MLP: (rows, width, hidden)
        flat = hidden.dim() == 2  # a mixture's experts: (positions, hidden), with the router's picks
        if index is None or not (dense or flat) or hidden.shape[:-1].numel() != selected.positions:
            return None
        return _Subset(index.to(hidden.device), tuple(hidden.shape))

    def before(self, module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        plan = self._plan(module, args)
        self.pending.append(plan)
        if not isinstance(plan, _Subset):
            return None
        hidden = args[0]
        if hidden.dim() == 3:
            return (hidden.reshape(-1, hidden.shape[-1])[plan.index][None],)
        positions = hidden.shape[0]  # the router's picks and weights are aligned with the positions
        return tuple(a[plan.index] if hasattr(a, "shape") and a.dim() and a.shape[0] == positions else a for a in args)

    def after(self, module: Any, args: tuple[Any, ...], output: Any) -> Any:
        plan = self.pending.pop()
        if isinstance(plan, _Probe):
            _CHECKED[module] = hasattr(output, "shape") and tuple(output.shape) == plan.shape
            return None
        if plan is None:
            return None
        full = output.new_zeros(plan.shape)
        full.view(-1, plan.shape[-1])[plan.index] = output.reshape(-1, plan.shape[-1])
        return full


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


def probe(model: Any) -> None:
    """Check every feed-forward on a two-token pass now, when the model loads: its first call runs in full,
    so the passes of the run all take the same path and their bits do not depend on which came first."""
    import torch

    if not feed_forwards(model):
        return
    device = model.get_input_embeddings().weight.device
    every = torch.ones((1, 2), dtype=torch.bool)
    with torch.no_grad(), installed(model), selecting(every, every):
        model(input_ids=torch.zeros((1, 2), dtype=torch.long, device=device), use_cache=False)
