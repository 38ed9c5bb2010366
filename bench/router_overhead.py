"""Overhead of router statistics: the same evaluation timed with and without evalsuite's RouterRecorder.

    .venv/bin/python bench/router_overhead.py [--model DIR] [--data-dir DIR] [--benchmarks arc,gsm8k]
                                              [--limit N] [--repeats R] [--batch-size B] [--device auto]

The target is an overhead under 5% of evaluation time for real MoE models on GPU, where one forward pass
takes milliseconds. The defaults (the 2-layer reference tiny MoE, on CPU) are a worst case: its forward
pass is so cheap that the hooks' fixed cost per layer and per pass is a far larger share of it.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden-v1"


@contextlib.contextmanager
def _no_observer(name: str) -> Iterator[None]:
    yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(GOLDEN / "models" / "tiny-moe"), help="MoE model dir or Hub id")
    parser.add_argument("--data-dir", default=str(GOLDEN / "data"), help="offline benchmark data")
    parser.add_argument("--benchmarks", default="arc,hellaswag,truthfulqa,gsm8k")
    parser.add_argument("--limit", type=int, default=2, help="docs per benchmark config")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each kind, interleaved")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: with more, any other work on "
        "the machine stalls torch's thread barriers and the timings swing tenfold)",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)

    from evalsuite.benchmarks.table import parse_names, select
    from evalsuite.data.sources import source_for
    from evalsuite.engine import BackendOptions, load_backend
    from evalsuite.engine.model_files import resolve
    from evalsuite.moe import recorder as router
    from evalsuite.pipeline.evaluate import evaluate, prepare_all

    specs = select(parse_names(args.benchmarks))
    prepared = prepare_all(specs, source_for(args.data_dir), args.limit)
    options = BackendOptions(
        model=args.model, backend="hf", dtype=args.dtype, device=args.device, batch_size=args.batch_size
    )
    backend: Any = load_backend(options, resolve(options))
    model, info = backend.module, backend.info
    if model is None or not router.is_moe(model):
        print(f"error: {args.model} is not an MoE model; nothing to measure", file=sys.stderr)
        return 1

    def timed(with_router: bool) -> tuple[float, float]:
        """(wall-clock, CPU) seconds of one evaluation. evaluate() turns every answer into Python
        floats and strings, so the device has finished when it returns."""
        recorder = router.RouterRecorder(model) if with_router else None
        wall, cpu = time.perf_counter(), time.process_time()
        observer = recorder.track if recorder else _no_observer
        evaluate(backend, specs, prepared, progress=False, observer=observer)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if recorder is not None:
            recorder.close()
        return wall, cpu

    timed(with_router=True)  # warm-up: kernels, allocator, tokenizer caches
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(args.repeats):  # interleaved, so that drift in machine load hits both alike
        for with_router in (False, True):
            runs[with_router].append(timed(with_router))

    print(f"model {args.model} on {', '.join(info.devices)}, {info.dtype}, batch size {args.batch_size}")
    print(f"benchmarks {args.benchmarks}, --limit {args.limit}, {args.repeats} runs of each kind (seconds)")
    print(f"{'':<26} {'wall min':>9} {'wall median':>12} {'CPU min':>8}")
    for with_router, label in ((False, "without router statistics"), (True, "with router statistics")):
        wall = [w for w, _ in runs[with_router]]
        cpu = [c for _, c in runs[with_router]]
        print(f"{label:<26} {min(wall):9.3f} {statistics.median(wall):12.3f} {min(cpu):8.3f}")

    def overhead(pick: Callable[[list[float]], float], column: int) -> float:
        base, hooked = (pick([r[column] for r in runs[flag]]) for flag in (False, True))
        return 100 * (hooked - base) / base

    # Minima are the runs least disturbed by other work on the machine: the fairest comparison.
    print(
        f"overhead: {overhead(min, 0):+.1f}% wall-clock, {overhead(min, 1):+.1f}% CPU time "
        f"(medians: {overhead(statistics.median, 0):+.1f}% wall); target on GPU: under 5% of evaluation time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
