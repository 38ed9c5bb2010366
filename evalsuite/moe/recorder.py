"""MoE router statistics: which experts each benchmark's tokens are routed to, recorded during `evalsuite run`.

Forward hooks on every router count, per benchmark, layer and expert, the token positions that picked
the expert among their top-k (`tokens`), as their top-1 (`top1_tokens`), and the sum of the routing
weights it got (`weight_sum`). The weight is the one the model multiplies the expert's output by: the
router's own top-k weights (Mixtral: softmax over all experts, top-k, renormalised over the k picks, so
a position's k weights sum to 1). Every real position is counted once per forward pass it is fed in (with
the fast backend a shared prefix is fed once for all the requests that share it: its positions count
once). Which positions are real is what the backend publishes for each pass (evalsuite.moe.positions):
not padding, nor the steps batched generation runs for rows that have stopped, so the counts do not
depend on the batch size; where nothing is published, every position is real. Counts stay on the device
of each router (one batched update per forward pass for all its layers) and reach the host once per
benchmark.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from evalsuite.fsio import atomic_write_bytes
from evalsuite.moe import positions
from evalsuite.moe.stats import COLUMNS, ROUTER_FILE, summarize

# Config keys that declare routed experts / experts per token, across MoE families (Mixtral, Qwen-MoE,
# OLMoE, DeepSeek, Hunyuan, ...); the first one present wins.
EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
TOP_K_KEYS = ("num_experts_per_tok", "moe_topk", "moe_top_k", "num_selected_experts", "top_k")
# Names a router module has inside its MoE block, for models that do not declare their router class.
ROUTER_NAMES = ("gate", "router")


# --- detection -----------------------------------------------------------------------------------


def _configs(model: Any) -> list[Any]:
    config = getattr(model, "config", None)
    if config is None:
        return []
    text = config.get_text_config() if callable(getattr(config, "get_text_config", None)) else config
    return [config] if text is config else [config, text]


def _config_int(model: Any, keys: Sequence[str]) -> int | None:
    for config in _configs(model):
        for key in keys:
            value = getattr(config, key, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def declared_experts(model: Any) -> int | None:
    """The number of routed experts per MoE layer the model's config declares (None: a dense model)."""
    n = _config_int(model, EXPERT_KEYS)
    return n if n and n > 1 else None


@dataclass(frozen=True)
class Router:
    name: str  # module path, e.g. "model.layers.3.mlp.gate"
    module: Any
    layer: int
    logits_index: int = 0  # where its output holds the router logits (a bare tensor: the logits)


def _declared_router_specs(model: Any) -> list[tuple[type, int, str | None]]:
    """(router class, index of the logits in its output, layer name) from transformers' `_can_record_outputs`."""
    specs: list[tuple[type, int, str | None]] = []
    for module in model.modules():
        declared: Any = (getattr(type(module), "_can_record_outputs", None) or {}).get("router_logits")
        for spec in declared if isinstance(declared, list) else [declared]:
            if isinstance(spec, type):
                specs.append((spec, 1, None))  # transformers' default index for a bare class
            elif isinstance(getattr(spec, "target_class", None), type):
                specs.append((spec.target_class, int(spec.index or 0), spec.layer_name))
    return specs


def _layer_numbers(names: Sequence[str]) -> list[int]:
    """The decoder layer each router sits in: the first number in its path, else its position."""
    numbers = []
    for name in names:
        found = next((int(part) for part in name.split(".") if part.isdigit()), None)
        numbers.append(found)
    if None in numbers or len(set(numbers)) != len(numbers):
        return list(range(len(names)))
    return [n for n in numbers if n is not None]


def find_routers(model: Any) -> list[Router]:
    """The router modules, found from the model's declared router class, else by structure: a `gate`
    or `router` submodule of a block that also holds `experts`. Never from the model's name."""
    found: list[tuple[str, Any, int]] = []
    specs = _declared_router_specs(model)
    if specs:
        for name, module in model.named_modules():
            for cls, index, layer_name in specs:
                if isinstance(module, cls) and (layer_name is None or f".{layer_name.strip('.')}." in f".{name}."):
                    found.append((name, module, index))
                    break
    else:
        for name, module in model.named_modules():
            for attr in ROUTER_NAMES:
                child = getattr(module, attr, None)
                if hasattr(module, "experts") and child is not None and hasattr(child, "forward"):
                    found.append((f"{name}.{attr}" if name else attr, child, 0))
    layers = _layer_numbers([name for name, _, _ in found])
    return [Router(name, module, layer, index) for (name, module, index), layer in zip(found, layers, strict=True)]


def is_moe(model: Any) -> bool:
    """True when the config declares experts and the router modules are found."""
    experts = declared_experts(model)
    if experts is None:
        return False
    if not find_routers(model):
        warnings.warn(
            f"the config declares {experts} experts but no router module was recognised in "
            f"{type(model).__name__}; router statistics are skipped",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True


# --- recording -----------------------------------------------------------------------------------


class _Totals:
    """Running counts of every layer on one device, for the current benchmark: (layers x (E + 1),)
    vectors indexed by layer slot * (E + 1) + expert. Kept on the device, so counting never waits for it."""

    def __init__(self, slots: int, num_experts: int, device: Any) -> None:
        import torch

        # One spare slot per layer: an index past the last expert (an expert-parallel sentinel) lands
        # there instead of failing the evaluation.
        self.width = num_experts + 1
        self.tokens = torch.zeros(slots * self.width, dtype=torch.int64, device=device)
        self.top1 = torch.zeros_like(self.tokens)
        wdtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
        self.weight = torch.zeros(slots * self.width, dtype=wdtype, device=device)
        self.non_finite = torch.zeros((), dtype=torch.int64, device=device)  # (layer, position) pairs not counted
        self._offsets: dict[tuple[int, ...], Any] = {}

    def add(self, slots: tuple[int, ...], index: Any, weight: Any, real: Any | None) -> None:
        """index, weight: (layers, positions, k) for the layer slots given; real: (positions,) bool,
        None when every position is real. A dozen tensor ops per forward pass, whatever the depth."""
        import torch

        offsets = self._offsets.get(slots)
        if offsets is None:  # made once: a host-to-device copy per forward pass would stall it
            offsets = torch.tensor(slots, device=self.tokens.device)[:, None, None] * self.width
            self._offsets[slots] = offsets
        index = index.clamp(0, self.width - 1)
        top1 = index.gather(2, weight.argmax(dim=2, keepdim=True)) + offsets
        index = index + offsets
        weight = weight.to(self.weight.dtype)
        # A position whose routing weights are not finite (NaN activations) picked no expert: torch.topk
        # ranks NaN first, which would count as healthy routing. It is counted apart, in `non_finite`.
        counted = torch.isfinite(weight).all(dim=2, keepdim=True)
        if real is not None:
            counted = counted & real[None, :, None]
            self.non_finite += (~counted & real[None, :, None]).sum()
        else:
            self.non_finite += (~counted).sum()
        ones = counted.to(self.tokens.dtype).expand(top1.shape)
        weight = weight.masked_fill(~counted, 0.0)  # not a product: pad rows may be NaN
        self.tokens.index_add_(0, index.reshape(-1), ones.expand(index.shape).reshape(-1))
        self.top1.index_add_(0, top1.reshape(-1), ones.reshape(-1))
        self.weight.index_add_(0, index.reshape(-1), weight.reshape(-1))

    def to_host(self) -> list[tuple[list[int], list[int], list[float]]]:
        """Per layer slot: (tokens, top1_tokens, weight_sum) per expert, without the spare slot."""
        tokens, top1, weight = self.tokens.tolist(), self.top1.tolist(), self.weight.tolist()
        cut = [slice(start, start + self.width - 1) for start in range(0, len(tokens), self.width)]
        return [(tokens[part], top1[part], weight[part]) for part in cut]


def _plus(a: list[Any], b: list[Any]) -> list[Any]:
    return [x + y for x, y in zip(a, b, strict=True)]


class RouterRecorder:
    """Hooks the routers of `model`; `with recorder.track(benchmark):` counts the routing of that
    benchmark's forward passes; `write(run_dir)` saves them and returns the summary for results.json."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.routers = find_routers(model)
        experts = declared_experts(model)
        if not self.routers or experts is None:
            raise ValueError(f"{type(model).__name__}: not an MoE model (check router.is_moe first)")
        self.num_experts = experts
        self.top_k = _config_int(model, TOP_K_KEYS) or getattr(self.routers[0].module, "top_k", None)
        norm = [getattr(c, "norm_topk_prob", None) for c in _configs(model)]
        self._renormalise = next((bool(v) for v in norm if v is not None), True)
        self._benchmark: str | None = None
        self._live: dict[Any, _Totals] = {}  # by device
        self._pending: list[tuple[int, Any, Any]] = []  # (router slot, index, weight) of the running forward
        self._done: dict[str, dict[int, tuple[list[int], list[int], list[float]]]] = {}
        self._real: Any = None  # (positions,) bool of the current forward pass; None: all real
        self._real_on: dict[Any, Any] = {}
        self._warned: set[str] = set()
        self._handles = [model.register_forward_pre_hook(self._before_forward)]
        self._handles.append(model.register_forward_hook(self._after_forward))
        self._handles += [
            r.module.register_forward_hook(partial(self._on_route, i)) for i, r in enumerate(self.routers)
        ]

    @contextlib.contextmanager
    def track(self, benchmark: str) -> Iterator[None]:
        if self._benchmark is not None:
            raise RuntimeError(f"router statistics: {benchmark!r} started while {self._benchmark!r} is running")
        self._benchmark = benchmark
        try:
            yield
        finally:
            self._flush(benchmark)
            self._benchmark = None
            self._real, self._real_on = None, {}

    # Hooks.

    def _before_forward(self, module: Any, args: tuple[Any, ...]) -> None:
        if self._benchmark is None:
            return
        published = positions.current()
        if published is None:  # every position is real
            self._count_pending()  # routers that ran outside a forward of the whole model
            self._real, self._real_on = None, {}
            return
        # The backend's routers run only inside whole-model passes: anything pending is from a pass that
        # failed (out of memory).
        self._pending = []
        self._real, self._real_on = published.reshape(-1), {}

    def _after_forward(self, module: Any, args: Any, output: Any) -> None:
        self._count_pending()
        self._real, self._real_on = None, {}

    def _on_route(self, slot: int, module: Any, args: Any, output: Any) -> None:
        # Only keep the routing here: it is counted for all layers at once when the forward pass ends.
        if self._benchmark is not None:
            decoded = self._decode(self.routers[slot], output)
            if decoded is not None:
                self._pending.append((slot, *decoded))

    def _count_pending(self) -> None:
        import torch

        groups: dict[tuple[Any, Any], list[tuple[int, Any, Any]]] = {}
        for slot, index, weight in self._pending:  # one group per device (several with device_map="auto")
            groups.setdefault((index.device, index.shape), []).append((slot, index, weight))
        self._pending = []
        for (device, shape), routed in groups.items():
            weights = [w for _, _, w in routed]
            if len({w.dtype for w in weights}) > 1:
                weights = [w.float() for w in weights]
            totals = self._live.get(device)
            if totals is None:
                totals = self._live[device] = _Totals(len(self.routers), self.num_experts, device)
            totals.add(
                tuple(slot for slot, _, _ in routed),
                torch.stack([i for _, i, _ in routed]),
                torch.stack(weights),
                self._real_for(device, shape[0]),
            )

    def _real_for(self, device: Any, positions: int) -> Any:
        if self._real is None:
            return None
        if self._real.shape[0] != positions:
            self._warn_once(
                "positions",
                f"router statistics: {positions} routed positions for a batch of {self._real.shape[0]}; "
                "the published positions do not fit, all positions are counted",
            )
            return None
        if device not in self._real_on:
            self._real_on[device] = self._real.to(device, non_blocking=True)
        return self._real_on[device]

    def _decode(self, router: Router, output: Any) -> tuple[Any, Any] | None:
        """(top-k expert indices, their weights), each (positions, k), from a router's output."""
        import torch

        items = list(output) if isinstance(output, tuple | list) else [output]
        at = [i for i, t in enumerate(items) if isinstance(t, torch.Tensor)]
        idx_at = next((i for i in at if items[i].dim() == 2 and not items[i].is_floating_point()), None)
        if idx_at is not None:
            index = items[idx_at]
            # The routers of transformers return (logits, top-k weights, top-k indices): take the
            # weights next to the indices, never the logits (same shape when E == k).
            candidates = [
                i
                for i in at
                if i != router.logits_index and items[i].is_floating_point() and items[i].shape == index.shape
            ]
            if candidates:
                return index, items[min(candidates, key=lambda i: abs(i - idx_at))]
        # A router that returns only logits: route as Mixtral does (softmax, top-k, renormalise unless
        # the config says norm_topk_prob=False).
        logits = items[router.logits_index] if router.logits_index < len(items) else None
        if not isinstance(logits, torch.Tensor) or logits.shape[-1] != self.num_experts or not self.top_k:
            self._warn_once(router.name, f"router {router.name}: output not understood; its layer is not counted")
            return None
        probs = torch.softmax(logits.reshape(-1, self.num_experts).float(), dim=-1)
        weight, index = torch.topk(probs, self.top_k, dim=-1)
        if self._renormalise:
            weight = weight / weight.sum(dim=-1, keepdim=True)
        return index, weight

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=2)

    def _flush(self, benchmark: str) -> None:
        """Move the benchmark's counts to the host (the one wait for the device per benchmark) and add them up."""
        self._count_pending()
        done = self._done.setdefault(benchmark, {})
        zeros = ([0] * self.num_experts, [0] * self.num_experts, [0.0] * self.num_experts)
        on_devices = [totals.to_host() for totals in self._live.values()]
        non_finite = sum(int(totals.non_finite) for totals in self._live.values())
        self._live.clear()
        if non_finite:
            warnings.warn(
                f"router statistics of {benchmark}: {non_finite} routings (layer and position) had non-finite "
                "weights (NaN or infinite activations) and are not counted",
                RuntimeWarning,
                stacklevel=2,
            )
        for slot, r in enumerate(self.routers):
            tokens, top1, weight = done.get(r.layer, zeros)
            for host in on_devices:  # a layer's counts sit on the device of its router
                more_tokens, more_top1, more_weight = host[slot]
                tokens, top1, weight = _plus(tokens, more_tokens), _plus(top1, more_top1), _plus(weight, more_weight)
            done[r.layer] = (tokens, top1, weight)

    # Output.

    def frame(self) -> Any:
        """The counts so far as a DataFrame with COLUMNS, one row per benchmark, layer and expert."""
        import pandas as pd

        rows = [
            (benchmark, layer, expert, tokens[expert], top1[expert], weight[expert])
            for benchmark, layers in self._done.items()
            for layer, (tokens, top1, weight) in sorted(layers.items())
            for expert in range(self.num_experts)
        ]
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        return frame.astype(
            {"layer": "int64", "expert": "int64", "tokens": "int64", "top1_tokens": "int64", "weight_sum": "float64"}
        )

    def take(self) -> Any:
        """The counts so far (as `frame`), then forget them: a data-parallel replica hands over the
        counts of each part it answered, so the counts of a part that is answered again elsewhere
        after a replica died are never lost nor counted twice."""
        frame = self.frame()
        self._done = {}
        return frame

    def write(self, run_dir: str | Path) -> dict[str, Any]:
        """Write `router_stats.parquet` into `run_dir`; returns the summary stored in results.json."""
        return write_frame(self.frame(), run_dir)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def write_frame(frame: Any, run_dir: str | Path) -> dict[str, Any]:
    """Write router counts (a DataFrame with COLUMNS) as `router_stats.parquet` into `run_dir`; returns
    the summary stored in results.json."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    atomic_write_bytes(Path(run_dir) / ROUTER_FILE, buf.getvalue())
    return {"file": ROUTER_FILE, **summarize(frame)}


def recorder_for(module: Any | None) -> RouterRecorder | None:
    """A recorder hooked on `module`'s routers; None for engines without a module and for dense models."""
    return RouterRecorder(module) if module is not None and is_moe(module) else None
