"""Reading router statistics back: the parquet file of a run and its summary (figures: evalsuite.moe.plots).

The recording side (hooks during `evalsuite run`) is evalsuite.moe.recorder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evalsuite.errors import RunDirError
from evalsuite.results import require_run_dir

ROUTER_FILE = "router_stats.parquet"
COLUMNS = ("benchmark", "layer", "expert", "tokens", "top1_tokens", "weight_sum")
# A layer is flagged `collapsed` when one expert is the top-1 pick of more than this share of positions.
COLLAPSE_THRESHOLD = 0.9


def has_router_stats(run_dir: str | Path) -> bool:
    return (Path(run_dir) / ROUTER_FILE).is_file()


def load_router_stats(run_dir: str | Path) -> Any:
    """A run's router statistics as a DataFrame with COLUMNS; RunDirError when it has none."""
    import pandas as pd

    run_dir = require_run_dir(run_dir)
    path = run_dir / ROUTER_FILE
    if not path.is_file():
        raise RunDirError(
            f"{run_dir}: has no router statistics ({ROUTER_FILE}); they are written for MoE models "
            "unless the run used --no-router-stats"
        )
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise RunDirError(f"{path}: unreadable ({type(exc).__name__}: {exc}); re-run the evaluation") from exc
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise RunDirError(f"{path}: lacks the columns {', '.join(missing)}; it was not written by evalsuite")
    return frame[list(COLUMNS)]


def _layer_summary(layer: int, tokens: Any, top1: Any) -> dict[str, Any]:
    import numpy as np

    experts = len(tokens)
    positions = int(top1.sum())  # every position has exactly one top-1 expert
    out: dict[str, Any] = {"layer": layer, "tokens": positions}
    if positions == 0:
        return {
            **out,
            "entropy": None,
            "cv": None,
            "most_used": None,
            "least_used": None,
            "unused": [],
            "top1_max_share": None,
            "collapsed": False,
        }
    share = tokens / tokens.sum()
    nonzero = share[share > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum() / math.log(experts))
    top1_share = float(top1.max() / positions)
    return {
        **out,
        "entropy": round(min(max(entropy, 0.0), 1.0), 6),  # 1: perfectly even load, 0: one expert
        "cv": round(float(tokens.std() / tokens.mean()), 6),  # population std / mean of the loads
        "most_used": int(tokens.argmax()),
        "least_used": int(tokens.argmin()),
        "unused": [int(e) for e in np.flatnonzero(tokens == 0)],
        "top1_max_share": round(top1_share, 6),
        "collapsed": top1_share > COLLAPSE_THRESHOLD,
    }


def summarize(frame: Any) -> dict[str, Any]:
    """Per benchmark and layer: normalised entropy in [0, 1] and coefficient of variation of the
    experts' loads (top-k assignments), the most and least used expert, never-used experts, and
    `collapsed` when one expert takes more than COLLAPSE_THRESHOLD of the top-1 picks."""
    import numpy as np

    num_experts = int(frame["expert"].max()) + 1 if len(frame) else 0
    benchmarks: dict[str, Any] = {}
    ks = set()
    for benchmark in dict.fromkeys(frame["benchmark"]):  # run order, not alphabetical
        rows = frame[frame["benchmark"] == benchmark]
        layers = []
        for layer, part in rows.groupby("layer", sort=True):
            tokens = np.zeros(num_experts, dtype=np.int64)
            top1 = np.zeros(num_experts, dtype=np.int64)
            tokens[part["expert"].to_numpy()] = part["tokens"].to_numpy()
            top1[part["expert"].to_numpy()] = part["top1_tokens"].to_numpy()
            if top1.sum():
                ks.add(int(round(tokens.sum() / top1.sum())))
            layers.append(_layer_summary(int(layer), tokens, top1))
        benchmarks[str(benchmark)] = {"layers": layers}
    return {
        "collapse_threshold": COLLAPSE_THRESHOLD,
        "top_k": ks.pop() if len(ks) == 1 else None,
        "num_experts": num_experts,
        "benchmarks": benchmarks,
    }


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_summary(summary: dict[str, Any]) -> str:
    """The summary as a plain-text table, one line per benchmark and layer."""
    head = (
        f"{summary['num_experts']} experts, top-{summary['top_k']}; collapsed: one expert is the top-1 "
        f"pick of more than {summary['collapse_threshold']:.0%} of positions"
    )
    lines = [head, ""]
    header = f"{'benchmark':<12} {'layer':>5} {'tokens':>9} {'entropy':>7} {'cv':>6} {'most':>4} {'least':>5} "
    lines.append(header + f"{'top1 max':>8}  flags")
    for benchmark, data in summary["benchmarks"].items():
        for row in data["layers"]:
            flags = (["COLLAPSED"] if row["collapsed"] else []) + (
                [f"unused: {','.join(map(str, row['unused']))}"] if row["unused"] else []
            )
            lines.append(
                f"{benchmark:<12} {row['layer']:>5} {row['tokens']:>9} {_fmt(row['entropy'], '.3f'):>7} "
                f"{_fmt(row['cv'], '.3f'):>6} {_fmt(row['most_used'], 'd'):>4} {_fmt(row['least_used'], 'd'):>5} "
                f"{_fmt(row['top1_max_share'], '.1%'):>8}  {' '.join(flags)}".rstrip()
            )
    return "\n".join(lines) + "\n"
