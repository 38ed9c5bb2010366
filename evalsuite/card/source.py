"""Where each value in a card comes from: the model-index `source` evalsuite writes (evalsuite, its
version and the run) and the mark on smoke-run values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from evalsuite import __version__
from evalsuite.card.read import LIMIT_ARG, SMOKE_ARG
from evalsuite.paths import link_target
from evalsuite.results import RunResult


@dataclass(frozen=True)
class Origin:
    """Where one benchmark's value comes from: its model-index `source` and whether it is a smoke run."""

    source_name: str
    source_url: str
    smoke: bool = False
    limit: int | None = None


def run_source_name(run: RunResult) -> str:
    """`evalsuite 0.1.0 run 20261128T101500Z`, with `smoke run` and the limit for smoke runs."""
    version = run.provenance.evalsuite_version or __version__
    run_id = run.path.name if run.path is not None else run.provenance.finished_at
    kind = "smoke run" if run.provenance.smoke else "run"
    limit = f" (--limit {run.provenance.limit})" if run.provenance.limit else ""
    return f"evalsuite {version} {kind} {run_id}{limit}"


def smoke_args(smoke: bool, limit: int | None) -> dict[str, Any] | None:
    """The machine-readable mark of a smoke-run value: the metric's `args` in the model-index."""
    if not smoke:
        return None
    return {SMOKE_ARG: True, **({LIMIT_ARG: limit} if limit else {})}


def origins_of(
    runs: Mapping[str, RunResult],
    link: Callable[[RunResult], str],
    source_url: str | None = None,
    source_name: str | None = None,
) -> dict[str, Origin]:
    """Per benchmark, the Origin of the run its value came from; the url is `source_url` or the run's link."""
    return {
        name: Origin(
            source_name=source_name or run_source_name(run),
            source_url=link_target(source_url or link(run)),
            smoke=run.provenance.smoke,
            limit=run.provenance.limit,
        )
        for name, run in runs.items()
    }
