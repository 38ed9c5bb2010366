"""The `evalsuite` command line: thin subcommands, each calling one function of the package.

Errors on bad input print `error: <one line>` and exit 1; no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from evalsuite import __version__
from evalsuite.benchmarks.table import BENCHMARK_NAMES
from evalsuite.cli.argtypes import positive_int
from evalsuite.errors import EvalsuiteError, one_line


class UsageError(EvalsuiteError):
    """Bad command-line usage (unknown option, a value of the wrong type)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one `error:` line (exit 2) instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}; see `{self.prog} --help`")


# --- run ---------------------------------------------------------------------------------------


def add_run_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="evaluate a model on the six Open LLM Leaderboard v1 benchmarks",
        description="Evaluate a model exactly as the Open LLM Leaderboard v1 did and write a run directory "
        "(results.json, samples/, model-index.yaml, metrics.md, router statistics for MoE models).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="Hub id (owner/name) or local model directory")
    src.add_argument(
        "--demo",
        action="store_true",
        help="smoke run: a tiny random MoE on the synthetic sample data shipped with evalsuite (offline)",
    )
    p.add_argument("--revision", help="model revision on the Hub (branch, tag or commit); recorded in results")
    p.add_argument(
        "--dtype", default="auto", help="auto (config dtype on GPU, float32 on CPU), float32, bfloat16, float16"
    )
    p.add_argument(
        "--device", default="auto", help="auto (all visible GPUs via accelerate, else CPU), cpu, cuda, cuda:N"
    )
    p.add_argument("--batch-size", type=positive_int, default=1, help="1 (default) reproduces v1 exactly")
    p.add_argument(
        "--trust-remote-code", action="store_true", help="allow custom model code from the Hub (off by default)"
    )
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--data-dir", help="read datasets offline from DIR/<owner>/<name>/<config>/<split>.parquet")
    p.add_argument(
        "--output-dir", help="where to write the run (default results/<model>/<UTC timestamp>/); must not exist"
    )
    p.add_argument("--benchmarks", help=f"comma-separated subset of: {','.join(BENCHMARK_NAMES)} (default: all)")
    p.add_argument(
        "--limit", type=positive_int, help="first N docs per task after the v1 shuffle (marked as a smoke run)"
    )
    p.add_argument("--no-router-stats", dest="router_stats", action="store_false", help="skip MoE router statistics")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from evalsuite.benchmarks.table import parse_names
    from evalsuite.pipeline.run import RunOptions, run

    common = dict(
        output_dir=args.output_dir,
        benchmarks=parse_names(args.benchmarks),
        limit=args.limit,
        revision=args.revision,
        dtype=args.dtype,
        device=args.device,
        batch_size=args.batch_size,
        trust_remote_code=args.trust_remote_code,
        threads=args.threads,
        router_stats=args.router_stats,
        progress=args.progress,
    )
    if args.demo:
        from evalsuite import demo

        opts = demo.run_options(data_dir=args.data_dir, **common)
    else:
        opts = RunOptions(model=args.model, data_dir=args.data_dir, **common)
    out = run(opts)
    print(f"run written to {out}")
    print((out / "metrics.md").read_text(encoding="utf-8"), end="")
    return 0


# --- data --------------------------------------------------------------------------------------


def add_data_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="offline copies of the benchmark datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    pull = dsub.add_parser(
        "pull",
        help="download every split the benchmarks read into DIR/<owner>/<name>/<config>/<split>.parquet",
    )
    pull.add_argument("dir", help="destination directory")
    pull.add_argument("--benchmarks", help=f"comma-separated subset of: {','.join(BENCHMARK_NAMES)}")
    pull.add_argument("--from-dir", help="copy from another offline directory instead of the Hub")
    pull.set_defaults(func=cmd_data_pull)


def cmd_data_pull(args: argparse.Namespace) -> int:
    from evalsuite.benchmarks.table import parse_names, select
    from evalsuite.data.pull import pull
    from evalsuite.data.sources import source_for

    written = pull(Path(args.dir), select(parse_names(args.benchmarks)), source_for(args.from_dir))
    print(f"wrote {len(written)} files under {args.dir}")
    return 0


# --- card, compare, router-stats -----------------------------------------------------------------


def add_card_command(sub: argparse._SubParsersAction) -> None:
    from evalsuite.card import update as card

    card.add_parser(sub)


def add_compare_command(sub: argparse._SubParsersAction) -> None:
    from evalsuite.compare import comparison

    comparison.add_parser(sub)


def add_router_command(sub: argparse._SubParsersAction) -> None:
    from evalsuite.moe import stats as router_stats

    router_stats.add_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="evalsuite",
        description="Reproduce Open LLM Leaderboard v1 scores, write model cards, compare merges.",
    )
    parser.add_argument("--version", action="version", version=f"evalsuite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_run_command, add_data_command, add_card_command, add_compare_command, add_router_command):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except EvalsuiteError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; no run directory was written", file=sys.stderr)
        return 130
    except OSError as exc:
        if os.environ.get("EVALSUITE_DEBUG"):
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
