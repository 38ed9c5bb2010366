"""`evalsuite router-stats`: how an MoE model routed each benchmark's tokens, as a table, JSON or figures."""

from __future__ import annotations

import argparse
import json


def cmd_router_stats(args: argparse.Namespace) -> int:
    from evalsuite.moe.plots import plot_run
    from evalsuite.moe.stats import load_router_stats, render_summary, summarize

    summary = summarize(load_router_stats(args.run))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render_summary(summary), end="")
    if args.plots:
        for path in plot_run(args.run, args.plots):
            print(f"wrote {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "router-stats",
        help="print how an MoE model routed each benchmark's tokens to its experts",
        description="Summarise the router statistics of a run: per benchmark and layer, load balance "
        "(normalised entropy, coefficient of variation), most and least used expert, collapsed gates.",
    )
    p.add_argument("run", help="run directory written by `evalsuite run`")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--plots", metavar="DIR", help="also write the heatmaps (PNG) into DIR")
    p.set_defaults(func=cmd_router_stats)
