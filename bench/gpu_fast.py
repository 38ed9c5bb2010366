"""The fast backend on a GPU at the real datasets' sizes: tokens/s, share of the GPU's peak, and the
projected time of a Mixtral-class model.

    .venv/bin/python bench/gpu_fast.py [--out DIR] [--scale 1.0] [--peak-tflops 989] [--gsm8k-docs N]

Builds synthetic data in the Hub schemas at the real sizes (ARC 1,172 test documents, HellaSwag
10,042, MMLU 14,042 over 57 subjects, TruthfulQA 817, Winogrande 1,267, GSM8k 1,319; `--scale`
shrinks them, e.g. 0.002 for a CPU smoke run), a random Mixtral-shaped model of about 1B parameters
(hidden 1536, 8 layers, 8 experts of 3072, top-2; `--hidden` etc. change it) with the demo tokenizer,
runs `evalsuite run --backend fast` on it in bf16, and reads the accounting of results.json: tokens
forwarded per benchmark and model seconds. From them:

- tokens/s, and the model FLOPs per second: 2 × active parameters per token (the attention and the
  top-k experts of each layer, the output layer) × tokens forwarded / model seconds;
- the share of the GPU's peak (`--peak-tflops`: 989 for an H100/H200's dense bf16);
- the projected time of a Mixtral-class model (12.9B active parameters) on the same GPU at the same
  share of peak, for this run's tokens and for the ~14M unique-prefix positions of the real
  log-likelihood benchmarks.

The summary is printed and written to `<out>/summary.md`, with the run directory beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

# Documents in the eval split of each benchmark on the Hub (MMLU: over its 57 subjects).
REAL_DOCS = {"arc": 1172, "hellaswag": 10042, "mmlu": 14042, "truthfulqa": 817, "winogrande": 1267, "gsm8k": 1319}
MIXTRAL_ACTIVE = 12.9e9  # parameters one token passes through in Mixtral 8x7B
REAL_FLOOR = 14e6  # unique-prefix positions of the five log-likelihood benchmarks on the real data


def write_data(root: Path, scale: float, gsm8k_docs: int | None) -> dict[str, int]:
    """Every split the benchmark table reads: eval splits at the real sizes × scale, few-shot splits at the
    demo's sizes (enough to draw the shots from). Returns documents per benchmark."""
    from evalsuite.benchmarks.table import BENCHMARKS
    from evalsuite.demo import generate

    docs = {}
    for spec in BENCHMARKS:
        configs = spec.configs
        total = gsm8k_docs if spec.name == "gsm8k" and gsm8k_docs else max(1, round(REAL_DOCS[spec.name] * scale))
        per_config = max(1, total // len(configs))
        docs[spec.name] = per_config * len(configs)
        for config in configs:
            for split in spec.splits():
                rows = generate.benchmark_rows(spec, config, split, per_config if split == spec.eval_split else None)
                path = root / spec.dataset / config / f"{split}.parquet"
                generate.write_parquet(path, rows, generate.schema(spec.name))
    return docs


def active_parameters(config: Any) -> float:
    """Parameters one token passes through: attention, router and top-k experts per layer, the output layer."""
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    attention = hidden * head_dim * (2 * config.num_attention_heads + 2 * config.num_key_value_heads)
    experts = config.num_experts_per_tok * 3 * hidden * inter
    router = hidden * config.num_local_experts
    return float(layers * (attention + experts + router) + hidden * config.vocab_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-gpu-out"), help="data, model, run and summary")
    parser.add_argument("--scale", type=float, default=1.0, help="share of the real documents (default: all)")
    parser.add_argument("--gsm8k-docs", type=int, default=None, help="GSM8k documents (default: real × scale)")
    parser.add_argument("--benchmarks", default=None, help="comma-separated subset (default: all six)")
    parser.add_argument("--hidden", type=int, default=1536)
    parser.add_argument("--intermediate", type=int, default=3072)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the device's dense peak for --dtype")
    args = parser.parse_args(argv)

    from transformers import AutoConfig

    from evalsuite.benchmarks.table import parse_names
    from evalsuite.demo import build_tiny_model
    from evalsuite.pipeline.run import RunOptions, run

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data, model_dir, run_dir = out / "data", out / "model", out / f"run-{int(time.time())}"
    docs = write_data(data, args.scale, args.gsm8k_docs)
    if not (model_dir / "config.json").exists():
        build_tiny_model(
            model_dir,
            "mixtral",
            hidden_size=args.hidden,
            intermediate_size=args.intermediate,
            num_hidden_layers=args.layers,
            num_local_experts=args.experts,
            num_attention_heads=args.heads,
            num_key_value_heads=args.kv_heads,
            initializer_range=0.02,
        )
    config = AutoConfig.from_pretrained(model_dir)
    expert_params = (
        config.num_hidden_layers * config.num_local_experts * 3 * config.hidden_size * config.intermediate_size
    )
    active = active_parameters(config)
    benchmarks = parse_names(args.benchmarks) if args.benchmarks else None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    started = time.perf_counter()
    run(
        RunOptions(
            model=str(model_dir),
            data_dir=str(data),
            output_dir=str(run_dir),
            benchmarks=benchmarks,
            dtype=args.dtype,
            device=args.device,
            backend="fast",
        )
    )
    wall = time.perf_counter() - started
    results = json.loads((run_dir / "results.json").read_text())
    engine = results["engine"]
    lines = [
        f"# Fast backend at real sizes ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"devices: {', '.join(results['model']['devices'])}; dtype {results['model']['dtype']}; "
        f"engine {json.dumps({k: v for k, v in engine.items() if k != 'benchmarks'})}",
        f"model: random Mixtral-shaped, hidden {config.hidden_size}, {config.num_hidden_layers} layers, "
        f"{config.num_local_experts} experts of {config.intermediate_size}, top-{config.num_experts_per_tok}; "
        f"{results['model'].get('num_parameters', 0) / 1e9:.2f}B parameters ({expert_params / 1e9:.2f}B in experts), "
        f"{active / 1e6:.0f}M active per token",
        f"documents: {json.dumps(docs)}; whole run {wall:.0f} s",
        "",
        "| benchmark | tokens forwarded | floor | model s | tokens/s | TFLOP/s | share of peak |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    tokens_total, seconds_total = 0, 0.0
    for name, row in engine["benchmarks"].items():
        tokens, seconds = row.get("tokens_forwarded") or 0, row.get("model_seconds") or 0.0
        tokens_total += tokens
        seconds_total += seconds
        tflops = 2 * active * tokens / seconds / 1e12 if seconds else 0.0
        lines.append(
            f"| {name} | {tokens:,} | {row.get('unique_prefix_floor') or 0:,} | {seconds:.1f} | "
            f"{tokens / seconds if seconds else 0:,.0f} | {tflops:.1f} | {tflops / args.peak_tflops:.1%} |"
        )
    achieved = 2 * active * tokens_total / seconds_total if seconds_total else 0.0
    lines += [
        "",
        f"all: {tokens_total:,} tokens in {seconds_total:.1f} model s: {tokens_total / max(seconds_total, 1e-9):,.0f} "
        f"tokens/s, {achieved / 1e12:.1f} TFLOP/s = {achieved / 1e12 / args.peak_tflops:.1%} of {args.peak_tflops:g}",
    ]
    if achieved:
        mixtral_run = 2 * MIXTRAL_ACTIVE * tokens_total / achieved
        mixtral_real = 2 * MIXTRAL_ACTIVE * REAL_FLOOR / achieved
        lines += [
            f"projected, Mixtral-class (12.9B active) at the same share of peak: this run's tokens "
            f"{mixtral_run / 3600:.2f} h; the real log-likelihood benchmarks' ~14M unique-prefix positions "
            f"{mixtral_real / 3600:.2f} h (plus GSM8k's generation, which is bound by memory, not FLOPs)",
        ]
    summary = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
