"""Model cards: a run's six leaderboard results as `model-index` metadata plus the leaderboard's results
table, written into a new or existing README.md, read back from any card, or pushed to the Hub as a PR.

The metadata is made by huggingface_hub (EvalResult, ModelCardData, ModelCard); no YAML is written by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.card.read import (
    TASK_NAME,
    TASK_TYPE,
    CardWarning,
    model_data,
    no_front_matter,
    parse_card,
    read_card,
    read_text,
    spec_of,
    warn,
)
from evalsuite.card.splice import BOM, put_block, splice_model_index, split_card
from evalsuite.card.table import render_section, render_table
from evalsuite.errors import CardError, ConfigError, OutputExistsError, one_line
from evalsuite.fsio import atomic_write_bytes, atomic_write_text
from evalsuite.results import RunResult, load_run

if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

DEFAULT_SOURCE_NAME = "evalsuite"
BACKUP_SUFFIX = ".bak"
PUSH_MESSAGE = "Add Open LLM Leaderboard v1 evaluation results (evalsuite)"
# Result fields huggingface_hub writes once per (task, dataset type, config, split, revision) entry.
_ENTRY_FIELDS = ("task_name", "dataset_name", "dataset_args", "source_name", "source_url")


__all__ = ["CardWarning", "read_card", "render_metrics_table", "render_model_index", "update_card_text"]


# --- our results -------------------------------------------------------------------------------


def model_name_for(run: RunResult) -> str:
    """The name in `model-index`: the bare model name, as the leaderboard wrote it (`org/name` -> `name`)."""
    path = Path(run.model.id.rstrip("/\\"))
    return path.name or path.resolve().name


def eval_results(run: RunResult, source_url: str | None = None, source_name: str | None = None) -> list[EvalResult]:
    """One EvalResult per benchmark the run has, in the leaderboard's order and form; values in percent."""
    from huggingface_hub import EvalResult

    if source_name is not None and source_url is None:
        raise ConfigError("--source-name needs --source-url: a model-index source must have a url")
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
            metric_value=round(run.scores[spec.name].percent, 2),
            metric_name=spec.card.metric_name,
            source_name=(source_name or DEFAULT_SOURCE_NAME) if source_url else None,
            source_url=source_url,
        )
        for spec in BENCHMARKS
        if spec.name in run.scores
    ]


def merge_runs(runs: Sequence[RunResult]) -> tuple[RunResult, dict[str, RunResult]]:
    """Runs of one model as one result: the newest score per benchmark (by finish time; on a tie the later
    argument). Returns it and, per benchmark, the run its score came from."""
    if not runs:
        raise ConfigError("no run directories given; pass one or more directories written by `evalsuite run`")
    names = {model_name_for(r) for r in runs}
    if len(names) > 1:
        where = ", ".join(f"{model_name_for(r)} in {r.path}" for r in runs)
        raise CardError(f"the runs are of different models ({where}); a card holds one model's results")
    ordered = sorted(
        enumerate(runs), key=lambda ir: (ir[1].provenance.finished_at or ir[1].provenance.started_at, ir[0])
    )
    origins: dict[str, RunResult] = {}
    for _, run in ordered:
        origins.update({name: run for name in run.scores})
    if not origins:
        raise CardError(f"{runs[0].path}: the run has no benchmark scores; re-run the evaluation")
    newest = ordered[-1][1]
    used = list({id(r): r for r in origins.values()}.values())
    smoke = [r for r in used if r.provenance.smoke]
    merged = RunResult(
        model=newest.model,
        scores={spec.name: origins[spec.name].scores[spec.name] for spec in BENCHMARKS if spec.name in origins},
        provenance=replace(newest.provenance, smoke=bool(smoke)),
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
    if run.provenance.smoke:
        limit = f" (--limit {run.provenance.limit})" if run.provenance.limit else ""
        notes.append(f"Smoke run{limit}: scores on a subset of the documents, not comparable with the leaderboard.")
    return notes


def render_metrics_table(run: RunResult, details: str | Sequence[str] | None = None) -> str:
    """The leaderboard's body section (spec model-card.md §1.2): heading, details line, padded table with
    `Avg.` first (only when all six are there), then what is missing. `details` links the run's details
    (default `.`: the run directory, for metrics.md inside it)."""
    links = [details] if isinstance(details, str) else list(details or ["."])
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
) -> str:
    """`text` (a card, or None for a new one) with our results in its model-index and our section in its body.

    What changes, precisely (tests/test_card.py checks it on generated cards):
    - front matter: only the top-level `model-index` key, from its key line through the last line of its
      value, re-emitted by huggingface_hub; results other than our six keep their fields and values
      (comments inside model-index are not kept). A card without one gets it at the end of the front
      matter (at the start when the end would change a value), a card without front matter gets one.
    - body: only the block from the `<!-- evalsuite:results:start -->` line to the `...:end -->` line,
      inserted after the first heading when absent (at the end when there is no heading; a line break
      is added after a last line that has none).
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
    name = model_name or old_name or model_name_for(run)
    if old_name and not model_name and old_name != model_name_for(run):
        warn(
            f"{where}: model-index is named {old_name!r}, the run's model {model_name_for(run)!r}; "
            f"keeping {old_name!r} (pass --model-name to change it)"
        )
    merged = _merge(old, eval_results(run, source_url, source_name), where)
    entry = _card_metadata(name, merged).to_yaml(line_break=lb)
    body = put_block(parts.body if text is not None else f"# {name}{lb}", render_metrics_table(run, details), lb, where)

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
    return new


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def write_card(path: Path, text: str) -> str:
    """Write atomically, an existing card first copied to `<card>.bak`; returns created/updated/unchanged."""
    if path.exists():
        old = path.read_bytes()
        if old == text.encode("utf-8"):
            return "unchanged"
        atomic_write_bytes(backup_path(path), old)
        atomic_write_text(path, text)
        return "updated"
    atomic_write_text(path, text)
    return "created"


# --- the Hub -----------------------------------------------------------------------------------


def hub_card(text: str) -> ModelCard:
    """The ModelCard `--push` uploads: str(card) is `text` byte for byte (ModelCard.content would re-dump
    every front-matter key, undoing the in-place update)."""
    from huggingface_hub import ModelCard

    class VerbatimModelCard(ModelCard):
        @property  # type: ignore[override]
        def content(self) -> str:
            return str(self._content)

        @content.setter
        def content(self, content: str) -> None:
            ModelCard.content.fset(self, content)  # type: ignore[attr-defined]

    return VerbatimModelCard(text.removeprefix(BOM))


def fetch_hub_card(repo_id: str) -> str | None:
    """The repo's README.md on the Hub, or None when it has none."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, "README.md")).read_text(encoding="utf-8")
    except RemoteEntryNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CardError(
            f"--push {repo_id}: cannot fetch its README.md ({one_line(exc)}); check the repo id, your "
            "connection and HF_HUB_OFFLINE, or pass --update with a local copy"
        ) from None


def push_card(text: str, repo_id: str, commit_message: str = PUSH_MESSAGE) -> str:
    """Open a pull request on `repo_id` with the card; returns its URL."""
    card = hub_card(text)
    try:
        info = card.push_to_hub(repo_id, create_pr=True, commit_message=commit_message)
    except (OSError, ValueError) as exc:
        raise CardError(
            f"--push {repo_id}: the Hub refused or could not be reached ({one_line(exc)}); nothing was "
            "pushed or written: check the repo id, your token and connection"
        ) from None
    return str(getattr(info, "pr_url", None) or info)


# --- command line ------------------------------------------------------------------------------

DESCRIPTION = """\
Write the model-card metadata (model-index) and the leaderboard's results table for runs of one model.

Where the card goes:
  (default)        write or update README.md in the run directory (the newest run's, when several)
  --update CARD    update an existing card in place (previous version kept as CARD.bak): only
                   evalsuite's six results and the table between its marker comments change;
                   running it again with the same runs changes nothing
  --output PATH    write a new card at PATH (refuses to overwrite); '-' prints it
  --push REPO_ID   open a pull request with the card on the Hub; the card is --update CARD when
                   given, else the repo's current README.md updated the same way

Reading a card instead:
  evalsuite card --from-card README.md [--json]
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "card",
        help="write or update a model card with the six results; read a card's published results",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="run directories of one model (newest result per benchmark wins)",
    )
    dest = p.add_mutually_exclusive_group()
    dest.add_argument("--update", metavar="CARD", help="existing README.md to update in place")
    dest.add_argument("--output", "-o", metavar="PATH", help="new card to write ('-': print it)")
    p.add_argument("--source-url", help="source url of each result (model-index `source`); without it, no source")
    p.add_argument("--source-name", help=f"source name (default {DEFAULT_SOURCE_NAME!r}; needs --source-url)")
    p.add_argument("--details-url", help="link of the details line (default: the run directory, relative)")
    p.add_argument("--model-name", help="name in model-index (default: the card's own, else the model's bare name)")
    p.add_argument("--push", metavar="REPO_ID", help="open a pull request with the card on this Hub model repo")
    p.add_argument("--from-card", metavar="CARD", help="read this card's published results instead (no RUN)")
    p.add_argument("--json", action="store_true", help="with --from-card: print the results as JSON")
    p.set_defaults(func=cmd_card)


def _link(run: RunResult, card_dir: Path) -> str:
    if run.path is None:
        return "."
    try:
        return Path(os.path.relpath(run.path.resolve(), card_dir.resolve())).as_posix()
    except ValueError:  # another drive
        return run.path.resolve().as_posix()


def _from_card(args: argparse.Namespace) -> int:
    if args.runs or args.update or args.output or args.push:
        raise ConfigError("--from-card reads a card: give no RUN, --update, --output or --push with it")
    run = read_card(args.from_card)
    if args.json:
        print(json.dumps(run.to_dict(), indent=2, ensure_ascii=False))
    else:
        average = [("Avg.", 100 * run.average)] if run.average is not None else []
        rows = average + [(s.title, run.scores[s.name].percent) for s in BENCHMARKS if s.name in run.scores]
        print(f"{run.model.id} (card {args.from_card})")
        print("\n".join(render_table(rows)))
        for note in _notes(run):
            print(note)
    return 0


def _write_card(args: argparse.Namespace) -> int:
    if not args.runs:
        raise ConfigError("give one or more run directories (or --from-card CARD to read a card)")
    if args.json:
        raise ConfigError("--json goes with --from-card")
    run, origins = merge_runs([load_run(r) for r in args.runs])
    target: Path | None
    if args.update:
        target = Path(args.update)
        base = read_text(target, "to write a new card use --output PATH")
    elif args.output:
        target = None if args.output == "-" else Path(args.output)
        if target is not None and target.exists():
            raise OutputExistsError(f"--output {target}: already exists; use --update {target} to update it")
        base = None
    elif args.push:
        target, base = None, None
    else:
        assert run.path is not None  # loaded from a run directory
        target = run.path / "README.md"
        base = read_text(target, "") if target.exists() else None
    if args.push and not args.update:
        base = fetch_hub_card(args.push)
    if args.push and not args.details_url:
        warn("--push without --details-url: the details line links a local run directory, unknown on the Hub")
    card_dir = target.parent if target is not None else Path.cwd()
    runs = sorted({id(r): r for r in origins.values()}.values(), key=lambda r: r.provenance.finished_at)
    details = [args.details_url] if args.details_url else [_link(r, card_dir) for r in runs]
    where = str(target) if target else (f"README.md of {args.push}" if args.push else "the new card")
    text = update_card_text(
        base,
        run,
        details=details,
        source_url=args.source_url,
        source_name=args.source_name,
        model_name=args.model_name,
        where=where,
    )
    if args.push:
        print(f"pull request opened: {push_card(text, args.push)}")
    if target is None:
        if not args.push:
            sys.stdout.write(text)
        return 0
    status = write_card(target, text)
    backup = f" (previous version in {backup_path(target)})" if status == "updated" else ""
    print(f"card {status}: {target}{backup}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CardWarning)
        try:
            return _from_card(args) if args.from_card else _write_card(args)
        finally:
            for w in caught:
                if issubclass(w.category, CardWarning):
                    print(f"warning: {w.message}", file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
