"""`evalsuite merge`: a recipe's variants merged, evaluated, carded, compared and checked against the
experts' prompts, all in one directory:

    <out>/recipe.yml           the recipe as given
    <out>/<gate mode>/         each variant's run directory (as `evalsuite run` writes it) and its README.md card
    <out>/compare/             compare.md (scores, paired significance) and its figures
    <out>/router_intent.csv    per variant, benchmark, layer and expert: the load share, next to the prompts
    <out>/router_intent.png    benchmarks x experts, one panel per variant
    <out>/merge.json           what was merged: recipe digest, gate modes, merged model dirs, seed, versions
    <out>/report.md            the summary; written last, so its presence marks a finished merge report

Each part is written atomically as soon as it is done: an interrupted report keeps its finished runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from evalsuite.card.publish import write_card
from evalsuite.card.update import update_card_text
from evalsuite.compare.comparison import compare
from evalsuite.compare.report import write as write_comparison
from evalsuite.fsio import atomic_write_bytes, atomic_write_json, atomic_write_text, unique_dir
from evalsuite.merge import intent
from evalsuite.merge.build import Variant, build_variant
from evalsuite.merge.recipe import Recipe, validate
from evalsuite.paths import display_path
from evalsuite.pipeline.run import RunOptions, run
from evalsuite.pipeline.rundir import RESULTS_ROOT, check_output_dir, utc_stamp
from evalsuite.results import RESULTS_FILE, load_run

REPORT_FILE = "report.md"
INTENT_CSV = "router_intent.csv"
INTENT_PNG = "router_intent.png"
CARD_FILE = "README.md"


@dataclass(frozen=True)
class MergeOptions:
    """What `evalsuite merge` does: which recipe, which gate modes, where; `run` holds the RunOptions fields
    (other than model and output_dir) every variant is evaluated with."""

    recipe: str
    gate_modes: tuple[str, ...] | None = None  # None: the recipe's own gate_mode
    output_dir: str | None = None
    run: tuple[tuple[str, Any], ...] = ()


def default_output_dir(recipe: Recipe, root: Path = RESULTS_ROOT) -> Path:
    return unique_dir(root / "merge" / recipe.name / utc_stamp())


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _merge_device(device: str) -> str:
    """Where mergekit computes the `hidden` gates: the run's device, or the GPU when there is one."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _run_options(variant: Variant, out: Path, fields: dict[str, Any]) -> RunOptions:
    # The seed the merge drew its random routers (and any expert noise) from decides the numbers too.
    seeds = (("merge_gate_init", variant.seed),)
    return RunOptions(model=str(variant.model_dir), output_dir=str(out), extra_seeds=seeds, **fields)


def _write_card(run_dir: Path) -> Path:
    result = load_run(run_dir)
    path = run_dir / CARD_FILE
    write_card(path, update_card_text(None, result, details=[RESULTS_FILE], where=str(path)))
    return path


def merge_and_evaluate(opts: MergeOptions) -> Path:
    """Validate the recipe, merge each gate mode (or reuse the cache), evaluate, card, compare; returns
    the output directory. Every check on the recipe and the output directory comes before any merge."""
    fields = dict(opts.run)
    recipe = validate(opts.recipe, opts.gate_modes, bool(fields.get("trust_remote_code", False)))
    modes = opts.gate_modes or (recipe.gate_mode,)
    out = Path(opts.output_dir) if opts.output_dir else default_output_dir(recipe)
    check_output_dir(out)
    fields["router_stats"] = True  # router versus intent needs them
    RunOptions(model=recipe.base_model, **fields)  # bad run options fail here, before the merges
    device = _merge_device(str(fields.get("device", "auto")))

    variants = []
    for i, mode in enumerate(modes, 1):
        _say(f"[{i}/{len(modes)}] merging {recipe.name} with gate mode {mode}")
        variants.append(build_variant(recipe, mode, device=device))
        _say(f"  {'reused' if variants[-1].reused else 'merged into'} {variants[-1].model_dir}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "recipe.yml", recipe.path.read_bytes())

    runs: dict[str, Path] = {}
    for i, variant in enumerate(variants, 1):
        _say(f"[{i}/{len(variants)}] evaluating {variant.model_dir.name}")
        runs[variant.gate_mode] = run(_run_options(variant, out / variant.gate_mode, fields))
        _write_card(runs[variant.gate_mode])

    comparison = compare(list(runs.values()))
    write_comparison(comparison, out / "compare")
    table = intent.intent_table(recipe, runs)
    atomic_write_text(out / INTENT_CSV, table.to_csv(index=False))
    intent.plot(recipe, table, out / INTENT_PNG)
    notes = [f"mergekit-moe, gate mode {v.gate_mode}: {w}" for v in variants for w in v.warnings or ()]
    notes += [
        f"mergekit-moe, gate mode {v.gate_mode}: its warnings are not known (merged by an earlier evalsuite, "
        "which did not keep them)"
        for v in variants
        if v.warnings is None
    ]
    notes += intent.warnings(table, len(recipe.experts))
    for note in notes:
        _say(f"warning: {note}")

    atomic_write_json(out / "merge.json", _manifest(recipe, variants, runs))
    atomic_write_text(out / REPORT_FILE, _report(recipe, variants, comparison.scores_md(), table, notes))
    return out


def _manifest(recipe: Recipe, variants: Sequence[Variant], runs: dict[str, Path]) -> dict[str, Any]:
    return {
        "recipe": display_path(recipe.path),
        "recipe_digest": variants[0].digest,
        "gate_modes": [v.gate_mode for v in variants],
        "mergekit_version": metadata.version("mergekit"),
        "variants": [
            {
                "gate_mode": v.gate_mode,
                "model_dir": display_path(v.model_dir),
                "seed": v.seed,
                "reused_from_cache": v.reused,
                "run_dir": runs[v.gate_mode].name,
            }
            for v in variants
        ],
    }


def _report(recipe: Recipe, variants: Sequence[Variant], scores_md: str, table: Any, notes: Sequence[str]) -> str:
    rows = "".join(
        f"| {v.gate_mode} | `{display_path(v.model_dir)}` | [{v.gate_mode}/]({v.gate_mode}/) "
        f"| [card]({v.gate_mode}/{CARD_FILE}) |\n"
        for v in variants
    )
    warned = "".join(f"- {n}\n" for n in notes) or (
        "None: mergekit-moe warned of nothing, no expert is starved and no gate collapsed.\n"
    )
    return "\n".join(
        [
            f"# Merge report: {recipe.name}\n",
            f"Recipe `{display_path(recipe.path)}` (digest {variants[0].digest}), {len(recipe.experts)} experts, "
            f"top-{recipe.experts_per_token}; merged with mergekit {metadata.version('mergekit')}.\n",
            "## Variants\n",
            "| gate mode | merged model | run | card |\n| --- | --- | --- | --- |\n" + rows,
            "## Scores (%)\n",
            scores_md,
            "Paired significance of each variant against the first: [compare/compare.md](compare/compare.md).\n",
            "## Router versus intent\n",
            f"Share of each benchmark's top-k assignments per layer and expert (%), next to the prompts each "
            f"expert was merged for; starved: under 1/(4 x {len(recipe.experts)} experts) of the load. "
            f"All rows: [{INTENT_CSV}]({INTENT_CSV}).\n",
            f"![router versus intent]({INTENT_PNG})\n",
            "### Warnings\n",
            warned,
            intent.to_markdown(recipe, table),
        ]
    )
