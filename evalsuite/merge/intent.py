"""Router versus intent: where each variant's routers sent each benchmark's tokens, next to the prompts the
recipe wrote for each expert; warnings for starved experts and collapsed gates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evalsuite.merge.recipe import Recipe
from evalsuite.moe.plots import load_shares
from evalsuite.moe.stats import COLLAPSE_THRESHOLD, load_router_stats, summarize

if TYPE_CHECKING:
    import pandas as pd

# An expert is starved in a layer when it gets less than this fraction of an even share of the load
# (1 / (4 * experts) of the top-k assignments): a quarter of what a balanced router would give it.
STARVED_FRACTION_OF_EVEN = 0.25
COLUMNS = ("variant", "benchmark", "layer", "expert", "model", "positive_prompts", "share", "starved", "collapsed")


def starved_below(num_experts: int) -> float:
    return STARVED_FRACTION_OF_EVEN / num_experts


def intent_table(recipe: Recipe, runs: Mapping[str, str | Path]) -> pd.DataFrame:
    """One row per (variant, benchmark, layer, expert): the expert's share of the layer's top-k assignments
    (each layer's shares sum to 1), its model and prompts, and the starved / collapsed flags."""
    import pandas as pd

    rows = []
    threshold = starved_below(len(recipe.experts))
    for variant, run_dir in runs.items():
        frame = load_router_stats(run_dir)
        benchmarks, layers, _, shares = load_shares(frame)
        summary = summarize(frame)["benchmarks"]
        for benchmark in benchmarks:
            collapsed = {row["layer"]: row["collapsed"] for row in summary[benchmark]["layers"]}
            for li, layer in enumerate(layers):
                for ei, expert in enumerate(recipe.experts):
                    share = float(shares[benchmark][li, ei])
                    rows.append(
                        (
                            variant,
                            benchmark,
                            layer,
                            ei,
                            expert.label,
                            " | ".join(expert.positive_prompts),
                            share,
                            share < threshold,
                            bool(collapsed.get(layer, False)),
                        )
                    )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _layers(values: Sequence[int]) -> str:
    return ("layer " if len(values) == 1 else "layers ") + ", ".join(map(str, values))


def warnings(table: pd.DataFrame, num_experts: int) -> list[str]:
    """One line per (variant, expert, benchmark) that is starved and per (variant, benchmark) that collapsed."""
    out = []
    below = starved_below(num_experts)
    for (variant, benchmark, expert, model), part in table[table["starved"]].groupby(
        ["variant", "benchmark", "expert", "model"], sort=False
    ):
        out.append(
            f"{variant}: expert {expert} ({model}) is starved on {benchmark} ({_layers(sorted(part['layer']))}): "
            f"under {below:.1%} of the load, 1/(4 x {num_experts} experts)"
        )
    collapsed = table[table["collapsed"]].drop_duplicates(["variant", "benchmark", "layer"])
    for (variant, benchmark), part in collapsed.groupby(["variant", "benchmark"], sort=False):
        out.append(
            f"{variant}: the gate collapsed on {benchmark} ({_layers(sorted(part['layer']))}): one expert is the "
            f"top-1 pick of more than {COLLAPSE_THRESHOLD:.0%} of positions"
        )
    return out


def benchmark_shares(table: pd.DataFrame) -> pd.DataFrame:
    """(variant, benchmark) x expert: the share averaged over layers (rows sum to 1)."""
    return table.pivot_table(
        index=["variant", "benchmark"], columns="expert", values="share", aggfunc="mean", sort=False
    )


def to_markdown(recipe: Recipe, table: pd.DataFrame) -> str:
    """The experts and their prompts, then per variant a benchmark/layer x expert table of shares (%)."""
    lines = ["| expert | model | positive prompts |", "| ---: | --- | --- |"]
    for i, e in enumerate(recipe.experts):
        prompts = "; ".join(e.positive_prompts) or "(none)"
        lines.append(f"| {i} | {e.label} | {prompts.replace('|', '/')} |")
    experts = list(range(len(recipe.experts)))
    for variant, part in table.groupby("variant", sort=False):
        lines += ["", f"### {variant}", ""]
        lines.append("| benchmark | layer | " + " | ".join(f"expert {e}" for e in experts) + " | flags |")
        lines.append("| --- | ---: | " + " | ".join("---:" for _ in experts) + " | --- |")
        for (benchmark, layer), rows in part.groupby(["benchmark", "layer"], sort=False):
            shares = rows.set_index("expert")["share"]
            starved = [str(e) for e in rows.loc[rows["starved"], "expert"]]
            flags = (["collapsed"] if rows["collapsed"].any() else []) + (
                [f"starved: {', '.join(starved)}"] if starved else []
            )
            cells = " | ".join(f"{100 * shares[e]:.1f}" for e in experts)
            lines.append(f"| {benchmark} | {layer} | {cells} | {' '.join(flags)} |")
    return "\n".join(lines) + "\n"


def plot(recipe: Recipe, table: pd.DataFrame, path: Path) -> Path:
    """One figure: per variant a benchmarks x experts heatmap of the load share, averaged over layers."""
    from matplotlib.figure import Figure

    means = benchmark_shares(table)
    variants = list(dict.fromkeys(table["variant"]))
    experts = [f"{i}: {e.label}" for i, e in enumerate(recipe.experts)]
    benchmarks = list(dict.fromkeys(table["benchmark"]))
    fig = Figure(figsize=(1.2 + 0.9 * len(experts) * len(variants), 1.4 + 0.45 * len(benchmarks)), layout="constrained")
    axes = fig.subplots(1, len(variants), squeeze=False, sharey=True)[0]
    image = None
    for ax, variant in zip(axes, variants, strict=True):
        values = means.loc[variant].reindex(benchmarks).to_numpy()
        image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(variant)
        ax.set_xticks(range(len(experts)), experts, rotation=45, ha="right")
        ax.set_yticks(range(len(benchmarks)), benchmarks)
        for (bi, ei), value in _cells(values):
            ax.text(ei, bi, f"{value:.0%}", ha="center", va="center", color="white" if value < 0.5 else "black")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="load share, mean over layers")
    fig.suptitle(f"{recipe.name}: router load per benchmark and expert")
    fig.savefig(path, dpi=110)
    return path


def _cells(values: object) -> list[tuple[tuple[int, int], float]]:
    import numpy as np

    array = np.asarray(values)
    return [((int(i), int(j)), float(array[i, j])) for i, j in np.ndindex(array.shape)]
