"""`evalsuite merge RECIPE.yml`: merge a mergekit-moe recipe per gate mode, evaluate, card and compare."""

from __future__ import annotations

import argparse

from evalsuite.cli.evaluation import add_evaluation_options, evaluation_fields

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
    add_evaluation_options(p)
    p.set_defaults(func=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    from evalsuite.merge.report import REPORT_FILE, MergeOptions, merge_and_evaluate

    data_dir = args.data_dir
    if args.sample_data:
        from evalsuite.demo import DEMO_DATA_DIR

        data_dir = str(DEMO_DATA_DIR)
    run = dict(data_dir=data_dir, smoke=args.sample_data, **evaluation_fields(args))
    out = merge_and_evaluate(MergeOptions(args.recipe, args.gate_modes, args.output_dir, run=tuple(run.items())))
    print(f"merge report written to {out / REPORT_FILE}")
    return 0
