"""Model cards: a run's six leaderboard results as `model-index` metadata plus the leaderboard's results
table, written into a new or existing README.md, read back from any card, or pushed to the Hub as a PR.

The metadata is made by huggingface_hub (EvalResult, ModelCardData, ModelCard); no YAML is written by hand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.card.bot import first_body_line, several_sections, span_to_replace
from evalsuite.card.guard import check_same_model
from evalsuite.card.hub_eval_results import card_value
from evalsuite.card.read import (
    TASK_NAME,
    TASK_TYPE,
    CardWarning,
    model_data,
    no_front_matter,
    parse_card,
    read_card,
    spec_of,
    warn,
)
from evalsuite.card.source import Origin, smoke_args
from evalsuite.card.splice import put_block, splice_model_index, split_card
from evalsuite.card.table import render_section, render_table
from evalsuite.errors import CardError, ConfigError
from evalsuite.naming import card_model_name
from evalsuite.paths import markdown_text
from evalsuite.results import RESULTS_FILE, RunResult

if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCardData

DEFAULT_SOURCE_NAME = "evalsuite"
# Result fields huggingface_hub writes once per (task, dataset type, config, split, revision) entry.
_ENTRY_FIELDS = ("task_name", "dataset_name", "dataset_args", "source_name", "source_url")


__all__ = ["CardWarning", "read_card", "render_metrics_table", "render_model_index", "update_card_text"]


# --- our results -------------------------------------------------------------------------------


def model_name_for(run: RunResult) -> str:
    """The name in `model-index`: the bare model name, as the leaderboard wrote it (`org/name` -> `name`),
    with Markdown and HTML escaped (a name is text, never a link or a tag)."""
    return markdown_text(card_model_name(run.model.id))


def eval_results(
    run: RunResult,
    source_url: str | None = None,
    source_name: str | None = None,
    origins: Mapping[str, Origin] | None = None,
) -> list[EvalResult]:
    """One EvalResult per benchmark the run has, in the leaderboard's order and form; values in percent.
    `origins` gives each benchmark's source and smoke mark; without it, all come from `run`."""
    from huggingface_hub import EvalResult

    if source_name is not None and source_url is None:
        raise ConfigError("--source-name needs --source-url: a model-index source must have a url")
    default = Origin(
        source_name=(source_name or DEFAULT_SOURCE_NAME),
        source_url=source_url or "",
        smoke=run.provenance.smoke,
        limit=run.provenance.limit,
    )
    return [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=TASK_NAME,
            dataset_type=spec.card.dataset_type,
            dataset_name=spec.title,
            dataset_config=spec.card.config,
            dataset_split=spec.card.split,
            dataset_args={"num_few_shot": spec.num_fewshot},
            metric_type=spec.metric,
            metric_value=card_value(run.scores[spec.name]),
            metric_name=spec.card.metric_name,
            metric_args=smoke_args(origin.smoke, origin.limit),
            source_name=origin.source_name if origin.source_url else None,
            source_url=origin.source_url or None,
        )
        for spec in BENCHMARKS
        if spec.name in run.scores
        for origin in [(origins or {}).get(spec.name, default)]
    ]


def merge_runs(runs: Sequence[RunResult]) -> tuple[RunResult, dict[str, RunResult]]:
    """Runs of one model as one result: per benchmark the newest full score, else the newest smoke score
    (by finish time; on a tie the later argument). Returns it and, per benchmark, the run its score came from."""
    if not runs:
        raise ConfigError("no run directories given; pass one or more directories written by `evalsuite run`")
    check_same_model(runs)
    ordered = sorted(
        enumerate(runs),
        key=lambda ir: (not ir[1].provenance.smoke, ir[1].provenance.finished_at or ir[1].provenance.started_at, ir[0]),
    )
    origins: dict[str, RunResult] = {}
    for _, run in ordered:
        origins.update({name: run for name in run.scores})
    for _, run in ordered:
        dropped = [name for name in run.scores if run.provenance.smoke and not origins[name].provenance.smoke]
        if dropped:
            warn(f"{run.path}: smoke-run scores for {', '.join(dropped)} left out; a full run has them")
    if not origins:
        raise CardError(f"{runs[0].path}: the run has no benchmark scores; re-run the evaluation")
    newest = ordered[-1][1]
    used = list({id(r): r for r in origins.values()}.values())
    smoke = [r for r in used if r.provenance.smoke]
    merged = RunResult(
        model=newest.model,
        scores={spec.name: origins[spec.name].scores[spec.name] for spec in BENCHMARKS if spec.name in origins},
        # smoke: what the notes and guards say of it (a --limit, else the demo) comes from the smoke runs used
        provenance=replace(
            newest.provenance,
            smoke=bool(smoke),
            limit=newest.provenance.limit or next((r.provenance.limit for r in smoke if r.provenance.limit), None),
        ),
        path=newest.path,
    )
    for r in smoke:
        limit = f" (--limit {r.provenance.limit})" if r.provenance.limit else ""
        warn(f"{r.path}: a smoke run{limit}; its scores are not comparable with the leaderboard")
    if merged.missing:
        warn(f"no result for {', '.join(merged.missing)}; the card leaves out Avg. (the mean of all six)")
    return merged, {name: origins[name] for name in merged.scores}


# --- the body section and the model-index block --------------------------------------------------


def _notes(run: RunResult) -> list[str]:
    notes = []
    if run.missing:
        titles = ", ".join(spec.title for spec in BENCHMARKS if spec.name in run.missing)
        notes.append(f"Not evaluated: {titles}. Avg. is left out: it is the mean of all six benchmarks.")
    if run.provenance.smoke and run.provenance.limit:
        notes.append(
            f"Smoke run (--limit {run.provenance.limit}): scores on a subset of the documents, not comparable "
            "with the leaderboard."
        )
    elif run.provenance.smoke:
        notes.append("Demo run: a tiny random model on synthetic data, not comparable with the leaderboard.")
    return notes


def render_metrics_table(run: RunResult, details: str | Sequence[str] | None = None) -> str:
    """The leaderboard's body section (spec model-card.md §1.2): heading, details line, padded table with
    `Avg.` first (only when all six are there), then what is missing. `details` links the run's details
    (default: its results.json, for metrics.md in the run directory)."""
    links = [details] if isinstance(details, str) else list(details or [RESULTS_FILE])
    percents = {spec.title: run.scores[spec.name].percent for spec in BENCHMARKS if spec.name in run.scores}
    average = None if run.average is None else 100 * run.average  # the mean of the unrounded scores
    return render_section(percents, average, links, _notes(run))


def _card_metadata(model_name: str, results: list[EvalResult]) -> ModelCardData:
    from huggingface_hub import ModelCardData

    return ModelCardData(model_name=model_name, eval_results=results)


def render_model_index(run: RunResult, source_url: str | None = None) -> str:
    """The run's `model-index:` front-matter block (YAML made by huggingface_hub), ending in a newline."""
    return _card_metadata(model_name_for(run), eval_results(run, source_url)).to_yaml() + "\n"


# --- updating cards ----------------------------------------------------------------------------


def _key(result: EvalResult) -> str:
    return json.dumps(asdict(result), sort_keys=True, default=str)


def _merge(old: list[EvalResult], ours: list[EvalResult], where: str) -> list[EvalResult]:
    """The card's results with ours in place of the old ones for the same benchmarks (never duplicated);
    everything else kept, in order. New ones go at the end."""
    mine = {spec.name: r for r in ours if (spec := spec_of(r))}
    merged: list[EvalResult] = []
    placed: set[str] = set()
    for r in old:
        spec = spec_of(r)
        if spec is None or spec.name not in mine:
            if spec is not None:
                warn(f"{where}: the run has no {spec.title}; the card keeps its earlier value {r.metric_value}")
            merged.append(r)
        elif spec.name not in placed:
            merged.append(mine[spec.name])
            placed.add(spec.name)
    merged += [r for name, r in mine.items() if name not in placed]
    # huggingface_hub writes one entry per dataset with the first result's dataset fields: results that
    # share a dataset must agree on them, or writing would change one of them.
    first: dict[tuple[Any, ...], EvalResult] = {}
    for r in merged:
        head = first.setdefault(r.unique_identifier, r)
        diff = [f for f in _ENTRY_FIELDS if getattr(r, f) != getattr(head, f)]
        if diff:
            dataset = " ".join(str(p) for p in r.unique_identifier[1:] if p)
            raise CardError(
                f"{where}: model-index results '{head.dataset_name}' ({head.metric_type}) and "
                f"'{r.dataset_name}' ({r.metric_type}) share dataset {dataset} but differ in "
                f"{', '.join(diff)}; "
                "huggingface_hub would merge them into one entry: edit or remove one"
            )
    return merged


def _front_matter(text: str) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when there: the same values, faster
    return yaml.load(split_card(text).yaml or "", Loader=loader) or {}


def update_card_text(
    text: str | None,
    run: RunResult,
    *,
    details: Sequence[str],
    source_url: str | None = None,
    source_name: str | None = None,
    model_name: str | None = None,
    where: str = "README.md",
    origins: Mapping[str, Origin] | None = None,
) -> str:
    """`text` (a card, or None for a new one) with our results in its model-index and our section in its body.

    What changes, precisely (tests/test_card.py checks it on generated cards):
    - front matter: only the top-level `model-index` key, from its key line through the last line of its
      value, re-emitted by huggingface_hub; results other than our six keep their fields and values
      (comments inside model-index are not kept). A card without one gets it at the end of the front
      matter (at the start when the end would change a value), a card without front matter gets one.
    - body: only the block from the `<!-- evalsuite:results:start -->` line to the `...:end -->` line;
      when absent, it takes the place of the leaderboard bot's results section (heading, details line,
      table), else it is inserted after the first heading (at the end when there is no heading; a line
      break is added after a last line that has none).
    Every other byte (other keys, comments, spacing, line breaks, a BOM, the body) stays as it was, and the
    same update twice gives the same bytes. A front matter that cannot be edited that way (a flow mapping,
    indented keys) is re-written whole by huggingface_hub instead, with a CardWarning (naming any key
    whose value that changes, e.g. empty ones, which huggingface_hub drops).
    """
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import eval_results_to_model_index

    parts = split_card(text or "")
    lb = parts.line_break
    old_card = parse_card(parts, where) if parts.yaml is not None else None
    if text and parts.yaml is None:
        warn(f"{where}: {no_front_matter(parts)}; adding one")
    old = list(model_data(old_card).eval_results or []) if old_card else []
    old_name = model_data(old_card).model_name if old_card and old else None
    model_name = markdown_text(model_name) if model_name else None
    name = model_name or old_name or model_name_for(run)
    if old_name and model_name and model_name != old_name:
        warn(f"{where}: --model-name renames the model-index from {old_name!r} to {model_name!r}")
    if old_name and not model_name and old_name != model_name_for(run):
        warn(
            f"{where}: model-index is named {old_name!r}, the run's model {model_name_for(run)!r}; "
            f"keeping {old_name!r} (pass --model-name to change it)"
        )
    merged = _merge(old, eval_results(run, source_url, source_name, origins), where)
    entry = _card_metadata(name, merged).to_yaml(line_break=lb)
    old_body = parts.body if text is not None else f"# {name}{lb}"
    bot = span_to_replace(old_body, where, first_body_line(parts))
    body = put_block(old_body, render_metrics_table(run, details), lb, where, replace=bot)

    before = _front_matter(text or "")
    expected = {k: v for k, v in before.items() if k != "model-index"}
    model_index = eval_results_to_model_index(name, merged)
    new = None
    for spliced in splice_model_index(parts.yaml or "", entry, lb, where, parts.yaml_first_line):
        candidate = parts.join(spliced, body)
        after = _front_matter(candidate)
        if after.pop("model-index", None) == model_index and list(after.items()) == list(expected.items()):
            new = candidate
            break
    if new is None:
        card = ModelCard(parts.join(parts.yaml or "", parts.body)[len(parts.bom) :])
        data = model_data(card)
        data.model_name, data.eval_results, card.text = name, merged, body
        new = parts.bom + str(card)
        after = _front_matter(new)
        changed = [k for k in expected if k not in after or after[k] != expected[k]]
        warn(
            f"{where}: the front matter could not be edited in place (not a block of `key: value` lines); "
            "huggingface_hub re-wrote it whole: comments and formatting of other keys not kept"
            + (f", values of {changed} changed" if changed else "")
        )
    check = model_data(ModelCard(new[len(parts.bom) :])).eval_results or []
    if sorted(map(_key, check)) != sorted(map(_key, merged)):
        raise CardError(
            f"{where}: huggingface_hub would not write the model-index back unchanged; the card was left "
            "as it was: check its model-index for results evalsuite cannot represent"
        )
    new_parts = split_card(new)
    several = several_sections(new_parts.body, where, first_body_line(new_parts))
    if several:
        warn(several)
    return new


def render_card_results(run: RunResult, where: str) -> str:
    """A card's published results as text: the model, the leaderboard table, then what is missing."""
    average = [("Avg.", 100 * run.average)] if run.average is not None else []
    rows = average + [(s.title, run.scores[s.name].percent) for s in BENCHMARKS if s.name in run.scores]
    return "\n".join([f"{run.model.id} (card {where})", *render_table(rows), *_notes(run)]) + "\n"
