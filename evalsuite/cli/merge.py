"""`evalsuite merge RECIPE.yml`: merge a mergekit-moe recipe per gate mode, evaluate, card and compare."""

from __future__ import annotations

import argparse

from evalsuite.benchmarks.table import BENCHMARK_NAMES
from evalsuite.cli.argtypes import positive_int

DESCRIPTION = """\
Merge a mergekit-moe recipe once per gate mode (through mergekit's Python API; merges are cached
under $EVALSUITE_CACHE/merge/<recipe digest>/), evaluate each merged model exactly as `evalsuite run`
does, and write into one directory: each variant's run and model card, a comparison of the variants
with paired significance, and the router-versus-intent table (per benchmark and layer, the share of
tokens each expert got, next to the prompts it was merged for) with warnings for starved experts and
collapsed gates. The recipe is checked first (models, architectures, tokenizers, gate modes); relative
model paths in it are read relative to the recipe file. Needs mergekit: pip install 'evalsuite[merge]'.
"""


def _gate_modes(text: str) -> tuple[str, ...]:
    from evalsuite.errors import RecipeError
    from evalsuite.merge.recipe import parse_gate_modes

    try:
        return parse_gate_modes(text)
    except RecipeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    from evalsuite.merge.recipe import GATE_MODES

    p = sub.add_parser(
        "merge",
        help="merge a mergekit-moe recipe per gate mode, evaluate and compare the variants",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", metavar="RECIPE.yml", help="a mergekit-moe recipe (base_model, experts, gate_mode)")
    p.add_argument(
        "--gate-modes",
        type=_gate_modes,
        help=f"comma-separated gate modes to merge and compare, of: {','.join(GATE_MODES)} "
        "(default: the recipe's gate_mode)",
    )
    p.add_argument(
        "--output-dir", help="where to write everything (default results/merge/<recipe>/<UTC timestamp>/); must be new"
    )
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data-dir", help="read datasets offline from DIR/<owner>/<name>/<config>/<split>.parquet")
    data.add_argument(
        "--sample-data", action="store_true", help="evaluate on the synthetic sample data shipped with evalsuite"
    )
    p.add_argument("--benchmarks", help=f"comma-separated subset of: {','.join(BENCHMARK_NAMES)} (default: all)")
    p.add_argument("--limit", type=positive_int, help="first N docs per task after the v1 shuffle (a smoke run)")
    p.add_argument("--dtype", default="auto", help="auto (config dtype on GPU, float32 on CPU), float32, bfloat16")
    p.add_argument("--device", default="auto", help="auto (GPUs when there are some, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=1, help="1 (default) reproduces v1 exactly")
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the Hub")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    from evalsuite.benchmarks.table import parse_names
    from evalsuite.merge.report import REPORT_FILE, MergeOptions, merge_and_evaluate

    data_dir = args.data_dir
    if args.sample_data:
        from evalsuite.demo import DEMO_DATA_DIR

        data_dir = str(DEMO_DATA_DIR)
    run = dict(
        data_dir=data_dir,
        benchmarks=parse_names(args.benchmarks),
        limit=args.limit,
        dtype=args.dtype,
        device=args.device,
        batch_size=args.batch_size,
        trust_remote_code=args.trust_remote_code,
        threads=args.threads,
        progress=args.progress,
        smoke=args.sample_data,
    )
    out = merge_and_evaluate(MergeOptions(args.recipe, args.gate_modes, args.output_dir, run=tuple(run.items())))
    print(f"merge report written to {out / REPORT_FILE}")
    return 0
