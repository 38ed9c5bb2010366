"""evalsuite's fast backend against lm-eval 0.4.13's HF model class, on the same model and the same requests.

    .venv/bin/python bench/vs_lm_eval.py [--benchmarks arc,...] [--limit N] [--limits arc=30,mmlu=1]
                                         [--repeats R] [--threads T] [--max-batch-tokens N] [--ablate]

What a user would otherwise run: lm-eval's `HFLM` at batch sizes 1, 8 and 32, its `loglikelihood` and
`generate_until` called with the same `Instance`s that the fast backend answers (evalsuite's v1 requests
of the reference data: by default all six benchmarks, GSM8k's generation included). The model is a
random Mixtral-shaped MoE (hidden 512, 4 layers, 8 experts, top-2, about 55M parameters) in float32 on
CPU: large enough that the model calls are most of the wall time (printed as "model share"). The kinds
run interleaved, in a rotating order, `--repeats` times; the tables show the median. Each kind's
log-likelihood part and generation part are timed apart (wall, process CPU time and the time inside
the model's forward passes), and the whole suite is their sum. On a shared machine the wall time
depends on the other load; the process's CPU time (one torch thread by default) measures the work, so
the speedups are taken on it; the model-time speedups are printed beside. For each part and for the
whole, the speedup is against lm-eval's best batch size for that part (the best batch may differ
between parts). The prediction of a document is its scored metrics (acc, acc_norm, mc1; GSM8k: the
generation); the share of documents whose prediction differs from lm-eval at batch size 1, the exact
v1 path, is printed before the last line, `speedup vs lm-eval best batch: N.NN×` (the whole suite).

`--ablate` also times the fast backend with parts of it switched off, to show what each is worth:
"feed-forward in full" runs every layer's feed-forward on every position (padding included), "last
layer in full" skips padding only. The last layer's share of the work is larger the fewer layers a
model has (a quarter of it here, 1/32 in Mixtral 8x7B). "torch's matrix products" computes with what
lm-eval computes with (MKL on CPU) instead of oneDNN (evalsuite.engine.fast.onednn): what the fast
backend's own schedule is worth, apart from the library that multiplies the matrices.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden-v1"
TOKENIZER = GOLDEN / "models" / "tiny-moe"
SEED = 0
LM_EVAL_BATCH_SIZES = (1, 8, 32)
LL_TOLERANCE = 1e-4  # the float32 tolerance of `evalsuite verify` (evalsuite.fidelity.tolerance)

MODEL_CONFIG = {
    "hidden_size": 512,
    "intermediate_size": 1024,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 8192,
    "router_jitter_noise": 0.0,
    "tie_word_embeddings": False,
}


LAST_LAYER_IN_FULL = "fast, last layer in full"
FEED_FORWARD_IN_FULL = "fast, feed-forward in full"
TORCH_MATMUL = "fast, torch's matrix products"
ABLATIONS = (LAST_LAYER_IN_FULL, FEED_FORWARD_IN_FULL, TORCH_MATMUL)


@contextlib.contextmanager
def ablated(kind: str) -> Iterator[None]:
    """The fast backend with a part switched off, for the kinds that name one (ablations, bench only)."""
    from evalsuite.engine.fast import onednn, sparse

    saved = sparse.feed_forwards, sparse._Hooks.__init__, onednn.available
    if kind == FEED_FORWARD_IN_FULL:
        sparse.feed_forwards = lambda model: []  # type: ignore[assignment]
    elif kind == LAST_LAYER_IN_FULL:
        init = sparse._Hooks.__init__
        sparse._Hooks.__init__ = lambda self, last: init(self, False)  # type: ignore[method-assign]
    elif kind == TORCH_MATMUL:
        onednn.available = lambda model: False  # type: ignore[assignment]
    try:
        yield
    finally:
        sparse.feed_forwards, sparse._Hooks.__init__, onednn.available = saved  # type: ignore[method-assign]


PARTS = {"loglikelihood": "log-likelihood", "generate_until": "generation"}
WHOLE = "whole suite"


@dataclass
class Outcome:
    """Per part (a request type, or WHOLE): the seconds of each repeat."""

    seconds: dict[str, list[float]]
    cpu_seconds: dict[str, list[float]]
    model_seconds: dict[str, list[float]]
    answers: dict[str, list[Any]]

    def add(self, part: str, seconds: float, cpu: float, model: float) -> None:
        for series, value in ((self.seconds, seconds), (self.cpu_seconds, cpu), (self.model_seconds, model)):
            series.setdefault(part, []).append(value)


def build_model(tokenizer: Any) -> Any:
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **MODEL_CONFIG,
    )  # fmt: skip
    torch.manual_seed(SEED)
    model = MixtralForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:  # a wide spread, so that the choices of the random model vary
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return model


@contextlib.contextmanager
def model_timer(model: Any, spent: list[float]) -> Iterator[None]:
    """Adds the wall time spent inside the model's forward passes to spent[0]."""
    started: list[float] = []

    def before(*_: Any) -> None:
        started.append(time.perf_counter())

    def after(*_: Any) -> None:
        spent[0] += time.perf_counter() - started.pop()

    handles = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def answer(lm: Any, model: Any, instances: dict[str, list[Any]], outcome: Outcome) -> None:
    """Each request type in one call, timed apart; the whole is their sum."""
    totals = [0.0, 0.0, 0.0]
    for request_type, items in instances.items():
        spent = [0.0]
        with model_timer(model, spent):
            started, cpu_started = time.perf_counter(), time.process_time()
            results = getattr(lm, request_type)(items, disable_tqdm=True)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        outcome.add(request_type, seconds, cpu, spent[0])
        totals = [totals[0] + seconds, totals[1] + cpu, totals[2] + spent[0]]
        outcome.answers[request_type] = (
            [float(r[0]) for r in results] if request_type == "loglikelihood" else list(results)
        )
    outcome.add(WHOLE, *totals)


def scored(
    specs: Any, prepared: Any, flat_types: list[tuple[str, int]], answers: dict[str, list[Any]]
) -> list[tuple[str, dict[str, float], Any]]:
    """Per document: its benchmark, its 0/1 metrics and its scored record (answers in the order of
    `flat_types`, (request type, index in that type's answers) of each request)."""
    from evalsuite.pipeline.evaluate import score_doc

    out, pos = [], 0
    for spec in specs:
        for item in prepared[spec.name]:
            responses = []
            for _ in item.requests:
                request_type, index = flat_types[pos]
                responses.append(answers[request_type][index])
                pos += 1
            record = score_doc(spec, item, responses)
            binary = {k: v for k, v in record.metrics.items() if k in ("acc", "acc_norm", "mc1")}
            out.append((spec.name, binary, record))
    return out


def predictions(specs: Any, prepared: Any, flat_types: list[tuple[str, int]], answers: dict[str, list[Any]]) -> list:
    """Per document: its binary metrics, or its generation."""
    return [
        (name, binary, [r.generation for r in record.requests if r.generation is not None])
        for name, binary, record in scored(specs, prepared, flat_types, answers)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(GOLDEN / "data"), help="offline benchmark data")
    parser.add_argument("--benchmarks", default="arc,hellaswag,mmlu,truthfulqa,winogrande,gsm8k")
    parser.add_argument("--limit", type=int, default=None, help="docs per benchmark config (default: all)")
    parser.add_argument("--limits", default="", help="per-benchmark limits over --limit, e.g. arc=30,mmlu=1")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each kind, interleaved")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: CPU time then measures the work)"
    )
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="fast backend budget (default: its own)")
    parser.add_argument(
        "--ablate", action="store_true", help="also time the fast backend with its savings or oneDNN switched off"
    )
    args = parser.parse_args(argv)

    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from evalsuite.benchmarks.table import parse_names, select
    from evalsuite.data.sources import source_for
    from evalsuite.engine.fast.budget import default_max_batch_tokens
    from evalsuite.engine.fast.lm import FastLM
    from evalsuite.pipeline.evaluate import prepare

    torch.set_num_threads(args.threads)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    specs = select(parse_names(args.benchmarks))
    source = source_for(args.data_dir)
    limits = {k: int(v) for k, v in (part.split("=") for part in args.limits.split(",") if part)}
    prepared = {s.name: prepare(s, source, limits.get(s.name, args.limit)) for s in specs}
    instances: dict[str, list[Any]] = {}
    flat_types: list[tuple[str, int]] = []
    for spec in specs:
        for item in prepared[spec.name]:
            for req in item.requests:
                bucket = instances.setdefault(req.request_type, [])
                flat_types.append((req.request_type, len(bucket)))
                bucket.append(Instance(request_type=req.request_type, doc={}, arguments=req.arguments, idx=0))

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    model = build_model(tokenizer)
    params = sum(p.numel() for p in model.parameters())

    def hflm(batch_size: int) -> Any:
        return HFLM(
            pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=batch_size, max_length=8192,
            add_bos_token=False,
        )  # fmt: skip

    exact = hflm(1)
    budget = args.max_batch_tokens or default_max_batch_tokens(model)
    kinds: dict[str, Any] = {f"lm-eval HFLM batch {b}": (exact if b == 1 else hflm(b)) for b in LM_EVAL_BATCH_SIZES}
    kinds["evalsuite fast"] = FastLM(exact, budget)
    if args.ablate:
        kinds.update({name: FastLM(exact, budget) for name in ABLATIONS})
    outcomes = {name: Outcome({}, {}, {}, {}) for name in kinds}
    names = list(kinds)
    for repeat in range(args.repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]  # rotate: no kind always first
        for name in order:
            with ablated(name):
                answer(kinds[name], model, instances, outcomes[name])
            o = outcomes[name]
            parts = "  ".join(
                f"{PARTS.get(p, p)} {o.seconds[p][-1]:6.1f} s wall {o.cpu_seconds[p][-1]:6.1f} s CPU"
                for p in [*instances, WHOLE]
            )
            print(f"  repeat {repeat + 1}/{args.repeats}  {name:<26} {parts}", flush=True)
        report(args, specs, prepared, flat_types, instances, outcomes, names, params, budget, repeat + 1)
    return 0


def report(
    args: Any,
    specs: Any,
    prepared: Any,
    flat_types: list[tuple[str, int]],
    instances: dict[str, list[Any]],
    outcomes: dict[str, Outcome],
    names: list[str],
    params: int,
    budget: int,
    repeats: int,
) -> None:
    """The tables over the repeats so far (printed after each repeat: a run cut short still reports)."""
    reference_name = f"lm-eval HFLM batch {LM_EVAL_BATCH_SIZES[0]}"
    reference = outcomes[reference_name].answers
    ref_pred = predictions(specs, prepared, flat_types, reference)
    n_requests = sum(len(v) for v in instances.values())
    print()
    print(
        f"model: random Mixtral-shaped MoE, {params / 1e6:.1f}M parameters, float32, {args.threads} CPU threads; "
        f"{n_requests} requests ({', '.join(f'{k}: {len(v)}' for k, v in instances.items())}), "
        f"{len(ref_pred)} documents; fast --max-batch-tokens {budget}; {repeats} interleaved repeats so far"
    )
    fast_name = "evalsuite fast"
    differing = {}
    for name, o in outcomes.items():
        pred = predictions(specs, prepared, flat_types, o.answers)
        differing[name] = sum(a != b for a, b in zip(pred, ref_pred, strict=True))
    lm_eval_names = [n for n in names if n.startswith("lm-eval")]
    for part in [*instances, WHOLE]:
        walls = {name: statistics.median(o.seconds[part]) for name, o in outcomes.items()}
        cpus = {name: statistics.median(o.cpu_seconds[part]) for name, o in outcomes.items()}
        models = {name: statistics.median(o.model_seconds[part]) for name, o in outcomes.items()}
        best = min(lm_eval_names, key=lambda n: cpus[n])
        best_model = min(lm_eval_names, key=lambda n: models[n])
        print()
        print(f"{PARTS.get(part, part)}:")
        print()
        print(
            "| kind | wall s | CPU s | model s | model share | vs lm-eval best (CPU) | vs lm-eval best (model s) "
            f"| max abs d-ll vs batch 1 | lls beyond {LL_TOLERANCE:g} | docs differing |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, o in outcomes.items():
            lls = o.answers.get("loglikelihood", [])
            d = [abs(a - b) for a, b in zip(lls, reference.get("loglikelihood", []), strict=True)]
            beyond = f"{sum(x > LL_TOLERANCE for x in d)}/{len(d)}"
            share = sum(o.model_seconds[part]) / sum(o.seconds[part])
            print(
                f"| {name} | {walls[name]:.1f} | {cpus[name]:.1f} | {models[name]:.1f} | {share:.0%} | "
                f"{cpus[best] / cpus[name]:.2f}× | {models[best_model] / models[name]:.2f}× | "
                f"{max(d, default=0.0):.1e} | {beyond} | {differing[name]}/{len(ref_pred)} |"
            )
        print()
        print(
            f"{PARTS.get(part, part)}: lm-eval best batch by CPU time {best} ({cpus[best]:.1f} s), by model time "
            f"{best_model}; fast {cpus[best] / cpus[fast_name]:.2f}× (CPU), "
            f"{models[best_model] / models[fast_name]:.2f}× (model time), "
            f"{walls[min(lm_eval_names, key=lambda n: walls[n])] / walls[fast_name]:.2f}× (wall)"
        )
        for name in ABLATIONS:
            if name in cpus:
                print(f"{name}: {cpus[best] / cpus[name]:.2f}× lm-eval's best batch")
    whole_cpu = {name: statistics.median(o.cpu_seconds[WHOLE]) for name, o in outcomes.items()}
    best = min(lm_eval_names, key=lambda n: whole_cpu[n])
    print()
    print(
        f"documents whose prediction differs from the exact path (lm-eval batch 1): "
        f"{differing[fast_name]}/{len(ref_pred)} = {differing[fast_name] / len(ref_pred):.2%}"
    )
    print(f"speedup vs lm-eval best batch: {whole_cpu[best] / whole_cpu[fast_name]:.2f}×")


if __name__ == "__main__":
    raise SystemExit(main())
