"""`evalsuite run`: evaluate a model (or the embedded demo) and write a run directory."""

from __future__ import annotations

import argparse

from evalsuite.cli.evaluation import add_evaluation_options, evaluation_fields


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--data-dir", help="read datasets offline from DIR/<owner>/<name>/<config>/<split>.parquet")
    p.add_argument(
        "--output-dir",
        help="where to write the run (default results/<model>/<UTC timestamp>/); must not exist or be empty",
    )
    add_evaluation_options(p)
    # resume and load-check options (evalsuite.resume, evalsuite.checks)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run of this command (the newest one, or the one in --output-dir); "
        "starts a new run when there is none",
    )
    p.add_argument("--fresh", action="store_true", help="discard the unfinished run in --output-dir and start over")
    p.add_argument(
        "--allow-missing-weights",
        action="store_true",
        help="score a checkpoint whose weights do not match its config (missing ones are random; recorded)",
    )
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from evalsuite.pipeline.run import RunOptions, complete_run, run

    common = dict(
        output_dir=args.output_dir,
        revision=args.revision,
        resume=args.resume,
        fresh=args.fresh,
        allow_missing_weights=args.allow_missing_weights,
        **evaluation_fields(args),
    )
    if args.demo:
        from evalsuite import demo

        opts = demo.run_options(data_dir=args.data_dir, **common)
    else:
        opts = RunOptions(model=args.model, data_dir=args.data_dir, **common)
    out = complete_run(opts)
    if out is not None:  # the note on stderr says why
        print(f"run complete already, nothing written: {out}")
    else:
        out = run(opts)
        print(f"run written to {out}")
    print((out / "metrics.md").read_text(encoding="utf-8"), end="")
    return 0
