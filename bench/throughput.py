"""Evaluation throughput per benchmark (requests and tokens per second): the baseline a faster backend
(shared contexts, batching, data parallel, vLLM) must beat.

    .venv/bin/python bench/throughput.py [--model DIR] [--data-dir DIR] [--benchmarks arc,mmlu]
                                         [--limit N] [--batch-size B] [--device auto] [--dtype auto]

Defaults: the reference tiny MoE on the reference data, CPU-sized. On a GPU, point it at a real model and
the full data (`evalsuite data pull DIR`) to see what a full v1 run costs.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden-v1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(GOLDEN / "models" / "tiny-moe"), help="model dir or Hub id")
    parser.add_argument("--data-dir", default=str(GOLDEN / "data"), help="offline benchmark data")
    parser.add_argument("--benchmarks", default=None, help="comma-separated subset (default: all six)")
    parser.add_argument("--limit", type=int, default=None, help="docs per benchmark config")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args(argv)

    from evalsuite.benchmarks.table import parse_names, select
    from evalsuite.data.sources import source_for
    from evalsuite.engine import BackendOptions, load_backend
    from evalsuite.engine.model_files import resolve
    from evalsuite.pipeline.evaluate import evaluate, prepare_all

    specs = select(parse_names(args.benchmarks))
    prepared = prepare_all(specs, source_for(args.data_dir), args.limit)
    options = BackendOptions(
        model=args.model, backend="hf", dtype=args.dtype, device=args.device, batch_size=args.batch_size
    )
    backend = load_backend(options, resolve(options))
    lm, info = backend.lm, backend.info
    times: dict[str, float] = {}

    @contextlib.contextmanager
    def timer(name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        times[name] = time.perf_counter() - start

    evaluate(backend, specs, prepared, progress=False, observer=timer)
    print(f"{info.id} on {','.join(info.devices)}, {info.dtype}, batch size {args.batch_size}")
    print(f"{'benchmark':<11} {'docs':>6} {'requests':>9} {'ctx tokens':>11} {'seconds':>8} {'req/s':>8} {'tok/s':>9}")
    for spec in specs:
        items = prepared[spec.name]
        requests = [r for item in items for r in item.requests]
        tokens = sum(len(lm.tok_encode(r.context)) for r in requests)
        secs = times[spec.name]
        print(
            f"{spec.name:<11} {len(items):>6} {len(requests):>9} {tokens:>11} {secs:>8.2f} "
            f"{len(requests) / secs:>8.1f} {tokens / secs:>9.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
