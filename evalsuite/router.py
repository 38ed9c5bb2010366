"""MoE router statistics (placeholder until the router-statistics module lands)."""

from __future__ import annotations

from typing import Any


def is_moe(model: Any) -> bool:
    return False


class RouterRecorder:  # pragma: no cover - replaced by the real implementation
    def __init__(self, model: Any) -> None:
        raise NotImplementedError
