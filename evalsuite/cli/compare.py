"""`evalsuite compare`: compare runs and published cards; print the tables, optionally write the report."""

from __future__ import annotations

import argparse

from evalsuite.cli.argtypes import confidence_level, positive_int, seed
from evalsuite.compare.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare runs and published cards: scores, deltas, paired significance, plots",
        description="Compare runs (and model cards): one row per model with the six scores and the average, "
        "differences to a baseline, paired significance on the documents both runs evaluated, MMLU per "
        "subject. Prints the tables; --write also saves compare.md and PNG figures.",
    )
    p.add_argument(
        "sources", nargs="+", metavar="RUN_OR_CARD", help="a run directory, or a model card file (README.md)"
    )
    p.add_argument("--baseline", help="the run to compare against: its path or label (default: the first)")
    p.add_argument(
        "--write", action="store_true", help="write compare.md and PNGs into results/compare/<UTC timestamp>/"
    )
    p.add_argument("--output-dir", help="write into this new directory instead (implies --write; never overwrites)")
    p.add_argument("--seed", type=seed, default=DEFAULT_SEED, help=f"bootstrap seed (default {DEFAULT_SEED})")
    p.add_argument(
        "--resamples",
        type=positive_int,
        default=DEFAULT_RESAMPLES,
        help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})",
    )
    p.add_argument(
        "--confidence", type=confidence_level, default=DEFAULT_CONFIDENCE, help="interval level (default 0.95)"
    )
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from evalsuite.compare.comparison import compare
    from evalsuite.compare.report import write

    cmp = compare(args.sources, args.baseline, seed=args.seed, n_resamples=args.resamples, confidence=args.confidence)
    print(cmp.to_markdown(subjects=False), end="")
    if args.write or args.output_dir:
        out = write(cmp, args.output_dir)
        print(f"\ncomparison written to {out}")
    return 0
