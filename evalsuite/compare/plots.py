"""Comparison figures as PNG files, drawn headless (matplotlib's Figure API, no pyplot, no display)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, cast

from evalsuite.benchmarks.table import BENCHMARK_NAMES, BY_NAME

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from matplotlib.projections.polar import PolarAxes

    from evalsuite.compare.comparison import Comparison

DPI = 130
LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "title": "model"}


def write_figures(cmp: Comparison, out_dir: Path) -> dict[str, Path]:
    """Every figure the comparison has data for, as out_dir/<name>.png; returns them by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    colors = model_colors(cmp.labels)
    figures = {
        "scores": scores_figure(cmp.scores, cmp.stderr, colors),
        "radar": radar_figure(cmp.scores, colors),
    }
    paired = cmp.significance[cmp.significance["reason"].isna()] if len(cmp.significance) else cmp.significance
    if len(paired):
        figures["deltas"] = deltas_figure(paired, cmp.baseline, cmp.confidence, colors)
    if not cmp.subjects.empty:
        figures["mmlu_subjects"] = subjects_figure(cmp.subjects)
    paths = {}
    for name, fig in figures.items():
        paths[name] = out_dir / f"{name}.png"
        fig.savefig(paths[name], dpi=DPI, bbox_inches="tight")  # nothing outside the axes is cut off
    return paths


def model_colors(labels: tuple[str, ...] | list[str]) -> dict[str, tuple[float, ...]]:
    """One colour per model, the same in every figure."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: tuple(cmap(i % cmap.N)) for i, label in enumerate(labels)}


def benchmark_label(name: str, width: int = 16) -> str:
    """The leaderboard title, wrapped so that neighbouring tick labels do not overlap."""
    title = BY_NAME[name].title if name in BY_NAME else name.capitalize()
    return textwrap.fill(title, width)


def scores_figure(scores: pd.DataFrame, stderr: pd.DataFrame, colors: dict[str, tuple[float, ...]]) -> Figure:
    """Grouped bars: the six benchmarks and the average, one bar per model, +-1 standard error."""
    import numpy as np
    from matplotlib.figure import Figure

    columns = list(scores.columns)
    n = len(scores)
    width = 0.8 / n
    x = np.arange(len(columns))
    fig = Figure(figsize=(max(9.0, 1.1 * len(columns) + 0.25 * len(columns) * n), 5.0), layout="constrained")
    ax = fig.subplots()
    values = 100 * scores.to_numpy(dtype=float)
    errors = 100 * stderr.reindex(index=scores.index, columns=columns).to_numpy(dtype=float)  # NaN: no bar
    for i, label in enumerate(map(str, scores.index)):
        ax.bar(
            x + (i - (n - 1) / 2) * width,
            values[i],
            width,
            yerr=errors[i],
            capsize=3,
            error_kw={"elinewidth": 0.8, "alpha": 0.7},
            label=label,
            color=colors[label],
        )
    ax.set_xticks(x, [benchmark_label(c) for c in columns])
    ax.set_ylim(0, 100)
    ax.set_ylabel("score (%)")
    ax.set_xlabel("benchmark")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title("Leaderboard scores (error bars: \u00b11 standard error)")
    ax.legend(**LEGEND_OUTSIDE)
    return fig


def radar_figure(scores: pd.DataFrame, colors: dict[str, tuple[float, ...]]) -> Figure:
    """One polygon per model over the six benchmarks (0 at the centre, 100% at the rim)."""
    import numpy as np
    from matplotlib.figure import Figure

    angles = np.linspace(0, 2 * np.pi, len(BENCHMARK_NAMES), endpoint=False)
    closed = np.append(angles, angles[0])
    fig = Figure(figsize=(8.0, 7.0), layout="constrained")
    ax = cast("PolarAxes", fig.add_subplot(projection="polar"))
    for label, row in scores.iterrows():
        values = 100 * row[list(BENCHMARK_NAMES)].to_numpy(dtype=float)
        ring = np.append(values, values[0])
        ax.plot(closed, ring, color=colors[str(label)], linewidth=1.6, label=label)
        ax.fill(closed, np.nan_to_num(ring), color=colors[str(label)], alpha=0.05)
    ax.set_xticks(angles, [benchmark_label(n, 14) for n in BENCHMARK_NAMES])
    for angle, text in zip(angles, ax.get_xticklabels(), strict=True):
        # Labels grow away from the circle: left-aligned on the right side, right-aligned on the left.
        cos = np.cos(angle)
        text.set_horizontalalignment("left" if cos > 0.1 else "right" if cos < -0.1 else "center")
    ax.tick_params(axis="x", pad=10)
    ax.set_ylim(0, 100)
    ax.set_yticks([20, 40, 60, 80, 100], ["20%", "40%", "60%", "80%", "100%"], fontsize=8, color="0.35")
    ax.set_rlabel_position(180 / len(BENCHMARK_NAMES))  # halfway between two axes, clear of their labels
    ax.set_title("Scores per benchmark (%)", pad=24)
    # Below the chart: beside it, a long legend would run into the label of the axis at 0 degrees.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=1 if len(scores) < 3 else 2, title="model")
    return fig


def deltas_figure(
    paired: pd.DataFrame, baseline: str, confidence: float, colors: dict[str, tuple[float, ...]]
) -> Figure:
    """Difference to the baseline per benchmark with its paired bootstrap interval (a forest plot)."""
    import numpy as np
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(paired.index.get_level_values("model")))
    benchmarks = [b for b in BENCHMARK_NAMES if b in set(paired.index.get_level_values("benchmark"))]
    step = 0.7 / max(1, len(models))
    fig = Figure(
        figsize=(10.5, 1.2 + 0.75 * len(benchmarks) + 0.15 * len(benchmarks) * len(models)),
        layout="constrained",
    )
    ax = fig.subplots()
    ax.axvline(0, color="0.4", linewidth=0.8, linestyle="--")
    for i, model in enumerate(models):
        rows = paired.loc[model].reindex(benchmarks)
        y = np.arange(len(benchmarks)) + (i - (len(models) - 1) / 2) * step
        delta = 100 * rows["delta"].to_numpy(dtype=float)
        low = 100 * rows["ci_low"].to_numpy(dtype=float)
        high = 100 * rows["ci_high"].to_numpy(dtype=float)
        xerr = np.vstack([delta - low, high - delta])
        ax.errorbar(delta, y, xerr=xerr, fmt="o", capsize=3, color=colors[model], label=model)
    ax.set_yticks(np.arange(len(benchmarks)), [benchmark_label(b, 24) for b in benchmarks])
    ax.invert_yaxis()  # table order, top to bottom
    ax.set_xlabel(f"difference to {baseline} (percentage points)")
    ax.set_ylabel("benchmark")
    ax.set_title(f"Paired differences, {100 * confidence:g}% bootstrap intervals (across 0: noise)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(**LEGEND_OUTSIDE)
    return fig


def subjects_figure(subjects: pd.DataFrame) -> Figure:
    """Heatmap of accuracy, models x MMLU subjects."""
    import numpy as np
    from matplotlib.figure import Figure

    values = 100 * subjects.to_numpy(dtype=float)
    n_models, n_subjects = values.shape
    fig = Figure(figsize=(max(10.0, 0.24 * n_subjects + 3), 3.6 + 0.4 * n_models), layout="constrained")
    ax = fig.subplots()
    # Colours span the data's own range: merges differ by a few points, invisible on a 0-100 scale.
    image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=np.nanmin(values), vmax=np.nanmax(values))
    ax.set_xticks(np.arange(n_subjects), [s.replace("_", " ") for s in subjects.columns], rotation=90, fontsize=8)
    ax.set_yticks(np.arange(n_models), list(subjects.index))
    ax.set_xlabel("MMLU subject")
    ax.set_ylabel("model")
    ax.set_title("MMLU accuracy per subject")
    fig.colorbar(image, ax=ax, label="accuracy (%)", pad=0.01)
    return fig
