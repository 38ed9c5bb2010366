"""What `evalsuite run --backend fast` spends outside the model's forward passes, at the real datasets' sizes.

    .venv/bin/python bench/harness_cost.py [--scales 0.1,0.25,0.5,1] [--out DIR] [--gpu-share 0.4]

For each scale (a share of the real documents, as `bench/gpu_fast.py --scale`), in a fresh process:
synthetic data in the Hub schemas, a tiny random Mixtral (hidden 64, 2 layers: its forward passes cost
little, so what is left is the harness), one run on the CPU with one torch thread, timed by phase:
data preparation (reading, few-shot contexts, requests), tokenisation, the prefix trie, the fast
backend's own batching (pass inputs, masks, caches, log-probabilities, sums), the stop-string checks,
the answer store of `--resume` (request keys, checksummed lines), router statistics after each pass,
scoring the documents, writing samples, the accounting's floor, and the model's forward passes (hooks
on the model). Each phase counts its own wall time only (a phase called inside another counts for the
inner one), so the phases add up to the run's wall time with "in no phase" (imports, setup, the
pipeline's own loop, results and card). "outside the model" is the run's wall time less the forward
passes; peak memory is the process's maximum resident set. The harness time is then set against the
projected time of a Mixtral-class model (12.9B active parameters) on one H100/H200 (989 dense bf16
TFLOP/s) at `--gpu-share` of its peak: the ~14M unique-prefix positions of the real log-likelihood
benchmarks (bench/gpu_fast.py), plus GSM8k's 1,319 generations as decoding steps bound by reading the
weights (93 GB of bf16 weights at 4.8 TB/s per step, 256 steps per batch of `--gen-rows` rows). Goal: the
time outside the model under 5% of that.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

MIXTRAL_ACTIVE = 12.9e9
MIXTRAL_WEIGHT_BYTES = 93e9  # 46.7B parameters in bf16
HBM_BYTES_PER_S = 4.8e12
PEAK_FLOPS = 989e12
FORWARD = "model forward passes"
BACKEND = "fast backend: batching, masks, scores"  # its own Python, outside the phases it calls
UNATTRIBUTED = "in no phase"


def projected_gpu_seconds(share: float, gen_rows: int) -> float:
    from gpu_fast import REAL_DOCS, REAL_FLOOR

    loglikelihood = 2 * MIXTRAL_ACTIVE * REAL_FLOOR / (share * PEAK_FLOPS)
    steps = 256 * -(-REAL_DOCS["gsm8k"] // gen_rows)
    return loglikelihood + steps * MIXTRAL_WEIGHT_BYTES / HBM_BYTES_PER_S


class Phases:
    """Exclusive wall time per phase: a call of a phase inside another's counts for the inner phase only,
    so the phases add up, and what no phase holds is the run's wall time less their sum."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.stack: list[list[Any]] = []  # per open call: phase, start, time of the calls inside it

    def enter(self, phase: str) -> None:
        self.stack.append([phase, time.perf_counter(), 0.0])

    def leave(self) -> None:
        phase, started, inner = self.stack.pop()
        elapsed = time.perf_counter() - started
        self.spent[phase] += elapsed - inner
        if self.stack:
            self.stack[-1][2] += elapsed

    def wrap(self, function: Any, phase: str) -> Any:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            self.enter(phase)
            try:
                return function(*args, **kwargs)
            finally:
                self.leave()

        return timed_call


@contextlib.contextmanager
def timed(phases: Phases, patches: list[tuple[Any, str, str]]) -> Iterator[None]:
    """Each patched function's calls timed as its phase; those that do not exist (another version) skipped."""
    saved = []
    for owner, name, phase in patches:
        if hasattr(owner, name):
            saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, phases.wrap(getattr(owner, name), phase))
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def one_scale(scale: float, out: Path) -> dict[str, Any]:
    import torch
    from gpu_fast import write_data

    import evalsuite.engine.accounting as accounting
    import evalsuite.engine.fast.generate as generate
    import evalsuite.engine.fast.lm as fast_lm
    import evalsuite.engine.hf as hf
    import evalsuite.engine.tokenize as tokenize
    import evalsuite.moe.recorder as recorder
    import evalsuite.pipeline.evaluate as evaluate
    import evalsuite.resume.lm as resume_lm
    import evalsuite.resume.session as session
    import evalsuite.resume.store as store
    from evalsuite.demo import build_tiny_model
    from evalsuite.pipeline.run import RunOptions, run

    torch.set_num_threads(1)
    data, model_dir = out / f"data-{scale:g}", out / "model"
    docs = write_data(data, scale, None)
    if not (model_dir / "config.json").exists():
        build_tiny_model(model_dir, "mixtral", hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    phases = Phases()
    load_model = hf.load_model

    def hooked(opts: Any, files: Any) -> Any:  # the model's forward passes, timed by hooks on the loaded model
        model, info = load_model(opts, files)
        model.register_forward_pre_hook(lambda *_: phases.enter(FORWARD))
        model.register_forward_hook(lambda *_: phases.leave())
        return model, info

    patches = [
        (evaluate, "prepare", "data preparation"),
        (tokenize, "_encode", "tokenisation"),
        (fast_lm, "encode_pairs", "tokenisation"),
        (accounting, "encode_pairs", "accounting tokenisation"),
        (fast_lm, "build_plan", "prefix trie"),
        (evaluate, "score_doc", "scoring documents"),
        (session.RunSession, "save_benchmark", "writing samples"),
        (accounting, "unique_prefix_floor", "accounting floor"),
        (accounting, "truncated", "accounting: requests cut"),
        (accounting, "loglikelihood_requests", "accounting tokenisation"),
        (hf, "load_model", "loading the model"),
        (fast_lm.FastLM, "loglikelihood", BACKEND),
        (fast_lm.FastLM, "generate_until", BACKEND),
        (generate.Stopper, "hit", "stop strings"),
        (resume_lm, "request_key", "answer store (resume)"),
        (store.AnswerStore, "put", "answer store (resume)"),
        (store.AnswerStore, "sync", "answer store (resume)"),
        (recorder.RouterRecorder, "_after_forward", "router statistics"),
    ]  # fmt: skip
    hf_load = hf.load_model
    hf.load_model = hooked
    try:
        with timed(phases, patches):
            started = time.perf_counter()
            run(
                RunOptions(
                    model=str(model_dir), data_dir=str(data), output_dir=str(out / f"run-{scale:g}-{int(time.time())}"),
                    dtype="float32", device="cpu", backend="fast", progress=False, threads=1,
                )
            )  # fmt: skip
            wall = time.perf_counter() - started
    finally:
        hf.load_model = hf_load
    spent = dict(phases.spent)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"scale": scale, "docs": docs, "wall": wall, "spent": dict(spent), "peak_bytes": peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="0.1,0.25,0.5,1")
    parser.add_argument("--out", type=Path, default=Path("bench-harness-out"))
    parser.add_argument("--gpu-share", type=float, default=0.4, help="assumed share of the GPU's peak")
    parser.add_argument("--gen-rows", type=int, default=128, help="GSM8k rows per decoding step on the GPU")
    parser.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if args.one is not None:
        print(json.dumps(one_scale(args.one, out)))
        return 0
    gpu = projected_gpu_seconds(args.gpu_share, args.gen_rows)
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(scale), "--out", str(out)], capture_output=True, text=True
        )
        if done.returncode:
            print(done.stderr[-3000:])
            return done.returncode
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  scale {scale:g} done: {rows[-1]['wall']:.1f} s", flush=True)
    for r in rows:
        r["spent"][UNATTRIBUTED] = r["wall"] - sum(r["spent"].values())
    names = sorted({p for r in rows for p in r["spent"]} - {FORWARD, UNATTRIBUTED}) + [UNATTRIBUTED]
    print()
    print(
        f"projected Mixtral-class time on one H100/H200 at {args.gpu_share:.0%} of peak, {args.gen_rows} GSM8k rows "
        f"per step: {gpu / 60:.1f} min; 5% of it: {0.05 * gpu:.0f} s"
    )
    print()
    print("each phase's own wall time (a phase called inside another counts for the inner one only)")
    print()
    print(
        "| scale | documents | wall s | model forward s | outside the model s | " + " | ".join(names) + " | peak RSS |"
    )
    print("|---:|---:|---:|---:|---:|" + "---:|" * len(names) + "---:|")
    for r in rows:
        forward = r["spent"].get(FORWARD, 0.0)
        cells = " | ".join(f"{r['spent'].get(p, 0.0):.1f}" for p in names)
        print(
            f"| {r['scale']:g} | {sum(r['docs'].values()):,} | {r['wall']:.1f} | {forward:.1f} | "
            f"{r['wall'] - forward:.1f} | {cells} | {r['peak_bytes'] / 2**30:.2f} GiB |"
        )
    last = rows[-1]
    outside = last["wall"] - last["spent"].get(FORWARD, 0.0) - last["spent"].get("loading the model", 0)
    print()
    print(
        f"at scale {last['scale']:g}: outside the model (model loading excluded) {outside:.0f} s = "
        f"{outside / gpu:.1%} of the projected GPU time"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
