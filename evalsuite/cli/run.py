"""`evalsuite run`: evaluate a model (or the embedded demo) and write a run directory."""

from __future__ import annotations

import argparse

from evalsuite.benchmarks.table import BENCHMARK_NAMES
from evalsuite.cli.argtypes import non_negative_float, positive_int


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
    p.add_argument("--backend", default="hf", help="engine: hf (default, exact v1 path) or vllm (GPU, evalsuite[vllm])")
    p.add_argument(
        "--tensor-parallel", type=positive_int, default=1, help="GPUs per model with --backend vllm (default 1)"
    )
    scale = p.add_argument_group("data parallel (Ray)")
    scale.add_argument(
        "--data-parallel", type=positive_int, default=1, metavar="N", help="N model replicas on Ray (default 1)"
    )
    scale.add_argument(
        "--gpus-per-replica", type=non_negative_float, default=0.0, metavar="K", help="GPUs per replica (0: CPU)"
    )
    scale.add_argument(
        "--cpus-per-replica", type=positive_int, default=1, metavar="C", help="CPU threads per replica (default 1)"
    )
    scale.add_argument("--ray-address", help="join this Ray cluster (default: start a local Ray instance)")
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
        backend=args.backend,
        tensor_parallel=args.tensor_parallel,
        data_parallel=args.data_parallel,
        gpus_per_replica=args.gpus_per_replica,
        cpus_per_replica=args.cpus_per_replica,
        ray_address=args.ray_address,
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
