"""Figures of a run's router statistics: a layer x expert load heatmap per benchmark, and one figure
contrasting the benchmarks. Reads only the frame of evalsuite.moe.recorder; uses matplotlib's object API (no
pyplot state), so it works headless and inside notebooks alike."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from evalsuite.moe.stats import COLLAPSE_THRESHOLD, has_router_stats, load_router_stats, summarize
from evalsuite.results import require_run_dir

# Cells are labelled with their value only while they stay legible; figures stay within a screen's
# width however many experts there are (OLMoE has 64).
MAX_ANNOTATED_CELLS = 400
MAX_ANNOTATED_EXPERTS = 16
HEATMAP_WIDTH = 12.0  # inches for all heatmap cells of a figure
CELL_WIDTH = 0.55


def load_shares(frame: Any) -> tuple[list[str], list[int], int, dict[str, Any]]:
    """(benchmarks in run order, layers, experts, {benchmark: layers x experts array of load shares}).
    A share is the expert's part of the layer's top-k assignments: each row sums to 1."""
    import numpy as np

    benchmarks = [str(b) for b in dict.fromkeys(frame["benchmark"])]
    layers = sorted(int(x) for x in frame["layer"].unique())
    experts = int(frame["expert"].max()) + 1
    shares = {}
    for benchmark in benchmarks:
        counts = np.zeros((len(layers), experts))
        rows = frame[frame["benchmark"] == benchmark]
        for layer, expert, tokens in zip(rows["layer"], rows["expert"], rows["tokens"], strict=True):
            counts[layers.index(int(layer)), int(expert)] = tokens
        totals = counts.sum(axis=1, keepdims=True)
        shares[benchmark] = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return benchmarks, layers, experts, shares


def _axes_labels(ax: Any, layers: list[int], experts: int, *, ylabels: bool = True) -> None:
    from matplotlib.ticker import MaxNLocator

    step = max(1, math.ceil(len(layers) / 24))
    ax.set_yticks(range(0, len(layers), step))
    ax.set_yticklabels([str(layers[i]) for i in range(0, len(layers), step)])
    ax.tick_params(labelleft=ylabels)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=min(experts, 16), integer=True))
    ax.set_xlabel("expert")
    if ylabels:
        ax.set_ylabel("layer")


def _annotate(ax: Any, values: Any, fmt: str, norm: Any, cmap: Any, max_cells: int = MAX_ANNOTATED_CELLS) -> None:
    rows, cols = values.shape
    if rows * cols > max_cells or cols > MAX_ANNOTATED_EXPERTS:
        return
    for i in range(rows):
        for j in range(cols):
            r, g, b, _ = cmap(norm(values[i, j]))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # luminance: white text on dark cells
            ax.text(
                j,
                i,
                format(round(float(values[i, j])) + 0.0, fmt),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )


def plot_benchmark(frame: Any, benchmark: str, path: Path, title: str = "") -> Path:
    """Heatmap of one benchmark: rows are layers, columns experts, colour the load share; white is an
    even load (1/E), red more, blue less. Each layer's normalised entropy (or `collapsed`) is on the right."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    _, layers, experts, shares = load_shares(frame)
    share = shares[benchmark] * 100
    summary = summarize(frame)
    info = {row["layer"]: row for row in summary["benchmarks"][benchmark]["layers"]}
    even = 100 / experts
    norm = TwoSlopeNorm(vmin=0, vcenter=even, vmax=max(2 * even, float(share.max())))
    width = 3.4 + min(CELL_WIDTH * experts, HEATMAP_WIDTH)
    fig = Figure(figsize=(max(6.0, width), max(2.8, 1.7 + 0.34 * len(layers))), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="RdBu_r", norm=norm, aspect="auto")
    _annotate(ax, share, ".0f", norm, image.cmap)
    _axes_labels(ax, layers, experts)
    right = ax.secondary_yaxis("right")
    right.set_yticks(range(len(layers)))
    right.set_yticklabels([_layer_note(info.get(layer)) for layer in layers], fontsize=8)
    bar = fig.colorbar(image, ax=ax, pad=0.02)
    bar.set_label("share of the layer's top-k picks (%)", fontsize=8)
    fig.suptitle(f"{title + ': ' if title else ''}{benchmark}", fontsize=11)
    ax.set_title(f"expert load per layer: top-{summary['top_k']} of {experts} (even = {even:.0f}%)", fontsize=9)
    fig.savefig(path, dpi=120)
    return path


def _layer_note(row: dict[str, Any] | None) -> str:
    if row is None or row["entropy"] is None:
        return ""
    return "collapsed" if row["collapsed"] else f"H={row['entropy']:.2f}"


def plot_contrast(frame: Any, path: Path, title: str = "") -> Path:
    """One figure across benchmarks: for each, how its load shares differ from the mean of all
    benchmarks (percentage points), then the normalised entropy of every layer per benchmark."""
    import numpy as np
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    benchmarks, layers, experts, shares = load_shares(frame)
    mean = np.mean([shares[b] for b in benchmarks], axis=0)
    diffs = {b: (shares[b] - mean) * 100 for b in benchmarks}
    # At least +-5 points, so that differences of a point or two stay pale rather than saturated.
    limit = max(5.0, max(float(np.abs(d).max()) for d in diffs.values()))
    norm = Normalize(vmin=-limit, vmax=limit)
    summary = summarize(frame)
    n = len(benchmarks)
    panel_w = max(1.7, min(CELL_WIDTH * experts, HEATMAP_WIDTH / n) + 0.5)
    height = max(3.4, 2.0 + 0.3 * len(layers))
    fig = Figure(figsize=(panel_w * n + 5.0, height), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[panel_w * n + 1.2, 3.8])  # type: ignore[misc]
    axes = left.subplots(1, n, sharey=True, squeeze=False)[0]
    for ax, benchmark in zip(axes, benchmarks, strict=True):
        image = ax.imshow(diffs[benchmark], cmap="RdBu_r", norm=norm, aspect="auto")
        _annotate(ax, diffs[benchmark], "+.0f", norm, image.cmap, max_cells=MAX_ANNOTATED_CELLS // n)
        _axes_labels(ax, layers, experts, ylabels=ax is axes[0])
        ax.set_title(benchmark, fontsize=10)
    bar = left.colorbar(image, ax=list(axes), pad=0.02)
    bar.set_label("load share minus the benchmarks' mean (points)", fontsize=8)
    ax = right.subplots()
    lowest = 1.0
    for benchmark in benchmarks:
        rows = [r for r in summary["benchmarks"][benchmark]["layers"] if r["entropy"] is not None]
        ax.plot([r["entropy"] for r in rows], [layers.index(r["layer"]) for r in rows], marker="o", label=benchmark)
        lowest = min([lowest, *(r["entropy"] for r in rows)])
    ax.set_ylim(len(layers) - 0.5, -0.5)  # layer 0 on top, as in the heatmaps
    ax.set_yticks(range(len(layers)))
    ax.set_yticklabels([str(x) for x in layers])
    ax.set_xlim(max(0.0, math.floor(lowest * 10) / 10 - 0.05), 1.01)
    ax.set_xlabel("normalised entropy (1 = even load)")
    ax.set_ylabel("layer")
    ax.set_title("load balance per layer", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.suptitle(
        f"{title + ': ' if title else ''}expert load by benchmark "
        f"(collapsed: one expert is the top-1 of > {COLLAPSE_THRESHOLD:.0%} of positions)",
        fontsize=11,
    )
    fig.savefig(path, dpi=120)
    return path


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "benchmark"


def plot_frame(frame: Any, out_dir: Path, title: str = "") -> list[Path]:
    """All figures of one run's frame into out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    benchmarks = [str(b) for b in dict.fromkeys(frame["benchmark"])]
    paths = [plot_benchmark(frame, b, out_dir / f"router_{_slug(b)}.png", title) for b in benchmarks]
    if len(benchmarks) > 1:
        paths.append(plot_contrast(frame, out_dir / "router_benchmarks.png", title))
    return paths


def plot_run(run_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """PNG figures of a run's routing into out_dir: a layer x expert heatmap per benchmark, and one
    figure contrasting the benchmarks (when there are several). [] for a run without router statistics."""
    if not has_router_stats(require_run_dir(run_dir)):
        return []
    return plot_frame(load_router_stats(run_dir), Path(out_dir), title=Path(run_dir).name)
