"""How close the fast backend comes to the exact path in reduced precision, and what moves it closer.

    .venv/bin/python bench/bf16_fidelity.py [--model DIR] [--dtype bfloat16] [--benchmarks ...] [--variants ...]

On one model, dtype and set of requests (the reference data's, v1's prompts), the exact path (lm-eval's
HF class at batch size 1, which is what v1 ran) answers every request; then the exact path at batch
size 8 (the batch-size noise the leaderboard itself had) and the fast backend in variants, each with a
part of it changed. Per kind: log-likelihoods not bit-identical to batch 1 and the largest difference,
the documents whose 0/1 outcome (acc, acc_norm, mc1) differs, the largest relative mc2 difference and
the GSM8k generations that differ. Variants:

- `fast`: as shipped (in reduced precision its generations take the exact path);
- `batched-generation`: generations decoded in batches as in float32;
- `ff-full`: every feed-forward on every position (no sparse feed-forward);
- `eager`: eager attention instead of SDPA;
- `single-row`: one row per forward pass (budget 1), siblings not packed: no custom attention mask;
- `logits-f32`: the last steps upcast to float32 (what the fast backend did before it did v1's
  arithmetic in the logits' dtype).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden-v1"
VARIANTS = ("fast", "batched-generation", "ff-full", "eager", "single-row", "logits-f32")


@contextlib.contextmanager
def variant(name: str, model: Any) -> Iterator[dict[str, Any]]:
    """The fast backend with one part changed (bench only); yields FastLM keyword overrides."""
    from evalsuite.engine.fast import schedule, scorer, sparse

    saved = (sparse.feed_forwards, schedule.PACK_TOKENS, scorer.token_logprobs, scorer.continuation_sum)
    attention = model.config._attn_implementation
    overrides: dict[str, Any] = {}
    if name == "ff-full":
        sparse.feed_forwards = lambda model: []  # type: ignore[assignment]
    elif name == "eager":
        model.set_attn_implementation("eager")
    elif name == "batched-generation":
        overrides["batched_generation"] = True
    elif name == "single-row":
        schedule.PACK_TOKENS = 0
        overrides["max_batch_tokens"] = 1
    elif name == "logits-f32":
        upcast = scorer.token_logprobs
        scorer.token_logprobs = lambda logits, tokens: upcast(logits.float(), tokens)  # type: ignore[assignment]
        scorer.continuation_sum = lambda values, dtype: sum(values)  # type: ignore[assignment]
    try:
        yield overrides
    finally:
        sparse.feed_forwards, schedule.PACK_TOKENS, scorer.token_logprobs, scorer.continuation_sum = saved
        model.set_attn_implementation(attention)


def outcomes(specs: Any, prepared: Any, flat: list[tuple[str, int]], answers: dict[str, list[Any]]) -> list[Any]:
    """Per document: (benchmark, 0/1 metrics, mc2, generations)."""
    from vs_lm_eval import scored  # the speed benchmark's scoring of the same requests (bench/ is on the path)

    return [
        (name, binary, record.metrics.get("mc2"), [r.generation for r in record.requests if r.generation is not None])
        for name, binary, record in scored(specs, prepared, flat, answers)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(GOLDEN / "models" / "tiny-moe-sp"))
    parser.add_argument("--data-dir", default=str(GOLDEN / "data"))
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--benchmarks", default="arc,hellaswag,mmlu,truthfulqa,winogrande,gsm8k")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--max-batch-tokens", type=int, default=4096)
    parser.add_argument("--dump", metavar="FILE", help="also write every kind's answers to FILE (JSON)")
    args = parser.parse_args(argv)

    import torch
    from lm_eval.api.instance import Instance

    from evalsuite.benchmarks.table import parse_names, select
    from evalsuite.data.sources import source_for
    from evalsuite.engine.base import BackendOptions
    from evalsuite.engine.fast.lm import FastLM
    from evalsuite.engine.hf import load_model, make_lm
    from evalsuite.engine.model_files import resolve
    from evalsuite.pipeline.evaluate import prepare

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    specs = select(parse_names(args.benchmarks))
    source = source_for(args.data_dir)
    prepared = {s.name: prepare(s, source, None) for s in specs}
    instances: dict[str, list[Any]] = {}
    flat: list[tuple[str, int]] = []
    for spec in specs:
        for item in prepared[spec.name]:
            for req in item.requests:
                bucket = instances.setdefault(req.request_type, [])
                flat.append((req.request_type, len(bucket)))
                bucket.append(Instance(request_type=req.request_type, doc={}, arguments=req.arguments, idx=0))
    options = BackendOptions(model=args.model, dtype=args.dtype, device="cpu", threads=1)
    files = resolve(options)
    model, info = load_model(options, files)
    tokenizer = files.tokenizer
    exact = make_lm(model, tokenizer, batch_size=1, max_length=info.max_length)

    def run(lm: Any) -> dict[str, list[Any]]:
        out = {}
        for kind, items in instances.items():
            results = getattr(lm, kind)(items, disable_tqdm=True)
            out[kind] = [float(r[0]) for r in results] if kind == "loglikelihood" else list(results)
        return out

    kinds: dict[str, dict[str, list[Any]]] = {}
    settled: dict[str, int] = {}  # requests the fast backend sent to the exact path
    started = time.perf_counter()
    kinds["exact, batch 1"] = reference = run(exact)
    print(f"exact, batch 1: {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    kinds["exact, batch 8"] = run(make_lm(model, tokenizer, batch_size=8, max_length=info.max_length))
    print(f"exact, batch 8: {time.perf_counter() - started:.0f} s", flush=True)
    for name in args.variants.split(","):
        with torch.no_grad(), variant(name, model) as overrides:
            started = time.perf_counter()
            lm = FastLM(exact, overrides.get("max_batch_tokens", args.max_batch_tokens))
            lm.batched_generation = overrides.get("batched_generation", lm.batched_generation)
            kinds[f"fast: {name}"] = run(lm)
            settled[f"fast: {name}"] = lm.reading().exact_requests
            print(f"fast: {name}: {time.perf_counter() - started:.0f} s", flush=True)

    if args.dump:
        Path(args.dump).write_text(json.dumps(kinds), encoding="utf-8")
    ref = outcomes(specs, prepared, flat, reference)
    lls = reference.get("loglikelihood", [])
    print(f"\nmodel {args.model}, {args.dtype}, CPU, 1 thread; {sum(map(len, instances.values()))} requests, "
          f"{len(ref)} documents\n")  # fmt: skip
    print("| kind | lls not identical | max abs d-ll | docs with another 0/1 outcome | max rel d-mc2 "
          "| generations differing | requests on the exact path |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, answers in kinds.items():
        got = answers.get("loglikelihood", [])
        changed = [abs(a - b) for a, b in zip(got, lls, strict=True) if a != b]
        mine = outcomes(specs, prepared, flat, answers)
        flipped = [r[0] for r, m in zip(ref, mine, strict=True) if r[1] != m[1]]
        mc2 = max((abs(m[2] - r[2]) / abs(r[2]) for r, m in zip(ref, mine, strict=True) if r[2]), default=0.0)
        gens = sum(r[3] != m[3] for r, m in zip(ref, mine, strict=True) if r[3])
        n_gens = sum(1 for r in ref if r[3])
        where = ", ".join(f"{b} {flipped.count(b)}" for b in dict.fromkeys(flipped))
        exact_path = settled.get(name, "")
        print(f"| {name} | {len(changed)}/{len(lls)} | {max(changed, default=0.0):.3g} | {len(flipped)}"
              f"{f' ({where})' if where else ''} | {mc2:.2g} | {gens}/{n_gens} | {exact_path} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
