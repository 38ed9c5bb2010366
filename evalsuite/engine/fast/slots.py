"""The KV cache of the rows being decoded: one buffer per layer, allocated once, written in place.

transformers' DynamicCache concatenates every layer's whole cache at every decoding step (a copy of
all of it per generated token, which on a CPU costs as much as the attention that reads it). Here each
layer holds (rows, kv heads, capacity, head dim) keys and values. Every active row writes its next
position at the same column, the frontier `t`; a row's own positions are the columns from its start
to the frontier, the rest of its row is masked. Rows are kept packed at the top (a finished row's slot
takes the last row), so a step forwards the active rows only, over views of the buffers: nothing is
copied per step. A row joins with its prompt's keys and values written just before the frontier;
when the frontier reaches the capacity, the columns before the earliest start are dropped (one copy
every `capacity - longest` steps at most).
"""

from __future__ import annotations

from typing import Any

from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class _Layer(DynamicLayer):
    """One layer's buffers; `update` writes the new position of the active rows at the frontier."""

    def __init__(self, slots: Slots, keys: Any, values: Any) -> None:
        super().__init__()
        self.slots = slots
        self.buffer_keys, self.buffer_values = keys, values
        self.device = keys.device
        self.is_initialized = True
        self._view()

    def _view(self) -> None:
        n, t = self.slots.active, self.slots.frontier
        self.keys, self.values = self.buffer_keys[:n, :, :t], self.buffer_values[:n, :, :t]

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        n, t = self.slots.active, self.slots.frontier
        self.buffer_keys[:n, :, t : t + 1] = key_states
        self.buffer_values[:n, :, t : t + 1] = value_states
        return self.buffer_keys[:n, :, : t + 1], self.buffer_values[:n, :, : t + 1]

    def get_seq_length(self) -> int:
        return self.slots.frontier


class Slots:
    """`rows` slots of `capacity` positions each; `active` rows are in use, slots [0, active)."""

    def __init__(self, rows: int, capacity: int, device: Any) -> None:
        import torch

        self.rows, self.capacity, self.device = rows, capacity, device
        self.active = 0
        self.frontier = 0
        self.starts: list[int] = []  # per active slot, the column of its first position
        self.lengths: list[int] = []  # per active slot, its positions (the next one's position id)
        self.live = torch.zeros((rows, capacity), dtype=torch.bool, device=device)
        self.cache: Any = None  # a DynamicCache over the buffers, made with the first row

    def _allocate(self, prefill: Any) -> None:
        import torch

        layers = []
        for layer in prefill.layers:
            k, v = layer.keys, layer.values
            keys = torch.zeros((self.rows, k.shape[1], self.capacity, k.shape[3]), dtype=k.dtype, device=k.device)
            values = torch.zeros((self.rows, v.shape[1], self.capacity, v.shape[3]), dtype=v.dtype, device=v.device)
            layers.append(_Layer(self, keys, values))
        self.cache = DynamicCache()
        self.cache.layers, self.cache.layer_class_to_replicate = layers, None

    @property
    def free(self) -> int:
        return self.rows - self.active

    def join(self, prefill: Any, row: int, length: int) -> int:
        """Row `row` of a prefill's cache (right-padded: its `length` positions start the row) becomes the last
        active slot, its positions just before the frontier. Returns the slot."""
        if self.cache is None:
            self._allocate(prefill)
        if length > self.frontier:
            self._shift(length - self.frontier)
        slot, t = self.active, self.frontier
        for layer, source in zip(self.cache.layers, prefill.layers, strict=True):
            layer.buffer_keys[slot, :, t - length : t] = source.keys[row, :, :length]
            layer.buffer_values[slot, :, t - length : t] = source.values[row, :, :length]
        self.live[slot] = False
        self.live[slot, t - length : t] = True
        self.starts.append(t - length)
        self.lengths.append(length)
        self.active += 1
        self._views()
        return slot

    def leave(self, slot: int) -> None:
        """Frees `slot`: the last active row moves into it."""
        last = self.active - 1
        if slot != last:
            t = self.frontier
            for layer in self.cache.layers:
                layer.buffer_keys[slot, :, :t] = layer.buffer_keys[last, :, :t]
                layer.buffer_values[slot, :, :t] = layer.buffer_values[last, :, :t]
            self.live[slot] = self.live[last]
            self.starts[slot], self.lengths[slot] = self.starts[last], self.lengths[last]
        self.starts.pop()
        self.lengths.pop()
        self.active -= 1
        self._views()

    def step_mask(self) -> Any:
        """Before a decoding step: the frontier column becomes every active row's, and the attention mask
        of the step (active rows, frontier + 1) is returned. Compacts first when the buffers are full."""
        if self.frontier + 1 > self.capacity:
            self._compact()
        self.live[: self.active, self.frontier] = True
        return self.live[: self.active, : self.frontier + 1]

    def stepped(self) -> None:
        """After a decoding step: every active row holds one more position."""
        self.frontier += 1
        self.lengths = [n + 1 for n in self.lengths]
        self._views()

    def _compact(self) -> None:
        """Drop the columns before the earliest start (no active row reads them)."""
        drop = min(self.starts)
        if drop == 0:
            raise RuntimeError("generation cache: no room left (capacity below a row's length)")
        n, t = self.active, self.frontier
        for layer in self.cache.layers:
            layer.buffer_keys[:n, :, : t - drop] = layer.buffer_keys[:n, :, drop:t].clone()
            layer.buffer_values[:n, :, : t - drop] = layer.buffer_values[:n, :, drop:t].clone()
        self.live[:n, : t - drop] = self.live[:n, drop:t].clone()
        self.live[:n, t - drop :] = False
        self.starts = [s - drop for s in self.starts]
        self.frontier -= drop
        self._views()

    def _shift(self, by: int) -> None:
        """Move the active rows `by` columns right (a joining prompt longer than the frontier)."""
        n, t = self.active, self.frontier
        if n:
            for layer in self.cache.layers:
                layer.buffer_keys[:n, :, by : by + t] = layer.buffer_keys[:n, :, :t].clone()
                layer.buffer_values[:n, :, by : by + t] = layer.buffer_values[:n, :, :t].clone()
            self.live[:n, by : by + t] = self.live[:n, :t].clone()
            self.live[:n, :by] = False
            self.starts = [s + by for s in self.starts]
        self.frontier += by

    def _views(self) -> None:
        for layer in self.cache.layers:
            layer._view()
