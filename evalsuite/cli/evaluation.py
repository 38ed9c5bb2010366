"""The evaluation options `evalsuite run` and `evalsuite merge` share (argparse only): how a model is
evaluated, whatever model it is."""

from __future__ import annotations

import argparse
from typing import Any

from evalsuite.benchmarks.table import BENCHMARK_NAMES
from evalsuite.cli.argtypes import non_negative_float, positive_int


def add_evaluation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmarks", help=f"comma-separated subset of: {','.join(BENCHMARK_NAMES)} (default: all)")
    p.add_argument(
        "--limit", type=positive_int, help="first N docs per task after the v1 shuffle (marked as a smoke run)"
    )
    p.add_argument(
        "--dtype", default="auto", help="auto (config dtype on GPU, float32 on CPU), float32, bfloat16, float16"
    )
    p.add_argument(
        "--device", default="auto", help="auto (all visible GPUs via accelerate, else CPU), cpu, cuda, cuda:N"
    )
    p.add_argument(
        "--batch-size", type=positive_int, help="--backend hf only: requests per batch; 1 (default) reproduces v1"
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        help="CPU threads for torch (default: the cores not busy with other work when the run starts)",
    )
    p.add_argument(
        "--trust-remote-code", action="store_true", help="allow custom model code from the Hub (off by default)"
    )
    p.add_argument(
        "--backend",
        default="fast",
        help="engine: fast (default: every shared prefix computed once, float rounding only differs), hf "
        "(lm-eval's HF class, the bit-exact v1 path), vllm (GPU, evalsuite[vllm]), or one another package "
        "installs; README: Backends",
    )
    p.add_argument(
        "--max-batch-tokens",
        type=positive_int,
        help="--backend fast only: token positions per forward pass, cached prefix included (default: from memory)",
    )
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


def evaluation_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The RunOptions fields the options above give."""
    from evalsuite.benchmarks.table import parse_names

    return dict(
        benchmarks=parse_names(args.benchmarks),
        limit=args.limit,
        dtype=args.dtype,
        device=args.device,
        batch_size=args.batch_size,
        threads=args.threads,
        trust_remote_code=args.trust_remote_code,
        backend=args.backend,
        max_batch_tokens=args.max_batch_tokens,
        tensor_parallel=args.tensor_parallel,
        data_parallel=args.data_parallel,
        gpus_per_replica=args.gpus_per_replica,
        cpus_per_replica=args.cpus_per_replica,
        ray_address=args.ray_address,
        router_stats=args.router_stats,
        progress=args.progress,
    )
