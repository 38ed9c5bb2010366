"""The Hub's `.eval_results/` files (https://huggingface.co/docs/hub/eval-results): one YAML file per
benchmark beside a model's README, each a list of results that the Hub shows on the model page and on
the benchmark dataset's leaderboard. Entries are made and read by huggingface_hub (EvalResultEntry).

Per benchmark evalsuite writes one entry: `dataset.id` (the Hub dataset), `dataset.task_id` (the benchmark
table's; see CardEntry.hub_task_id), `dataset.revision` (the dataset commit the run read, when it read the
Hub), `value` (the card's: percent, 2 decimals), `date` (when the run finished), `source` (the run's
results.json or --source-url, named after the protocol and the run) and `notes` (shots, metric and the
prompts' sha256, which `evalsuite verify` and `compare` check). Smoke-run values are never written:
the spec has no mark for them, and a leaderboard would rank them as real results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite.benchmarks.spec import BenchmarkSpec
from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.card.backup import replace_keeping_old
from evalsuite.card.source import Origin
from evalsuite.errors import CardError
from evalsuite.results import BenchmarkScore, RunResult

if TYPE_CHECKING:
    from huggingface_hub import EvalResultEntry

EVAL_RESULTS_DIR = ".eval_results"  # huggingface_hub.constants.EVAL_RESULTS_FOLDER
PROTOCOL = "Open LLM Leaderboard v1 protocol"
CARD_DECIMALS = 2  # the leaderboard's card values: percentages with 2 decimals


def card_value(score: BenchmarkScore) -> float:
    """A score as the card shows it (and the .eval_results files carry it): percent, 2 decimals."""
    return round(score.percent, CARD_DECIMALS)


def path_of(spec: BenchmarkSpec) -> str:
    """Where the benchmark's file goes, relative to the model repo's root."""
    return f"{EVAL_RESULTS_DIR}/{spec.name}.yaml"


def dataset_commit(run: RunResult, spec: BenchmarkSpec) -> str | None:
    """The dataset commit the run read (`<dataset>@<commit>` in provenance.data_files), or None (local data)."""
    commits = {
        value.split("@", 1)[1]
        for key, value in run.provenance.data_files.items()
        if key.startswith(f"{spec.dataset}/") and value.startswith(f"{spec.dataset}@")
    }
    return commits.pop() if len(commits) == 1 else None


def entry(spec: BenchmarkSpec, run: RunResult, origin: Origin) -> EvalResultEntry:
    from huggingface_hub import EvalResultEntry

    score = run.scores[spec.name]
    notes = f"{spec.num_fewshot}-shot {spec.metric}"
    if score.fingerprint is not None:
        notes += f"; prompts sha256:{score.fingerprint.prompts}"
    return EvalResultEntry(
        dataset_id=spec.dataset,
        task_id=spec.card.hub_task_id,
        value=card_value(score),
        dataset_revision=dataset_commit(run, spec),
        date=run.provenance.finished_at or None,
        source_url=origin.source_url or None,
        source_name=f"{PROTOCOL} ({origin.source_name})" if origin.source_url else None,
        notes=notes,
    )


def entries(
    runs: Mapping[str, RunResult], origins: Mapping[str, Origin], table: Sequence[BenchmarkSpec] = BENCHMARKS
) -> dict[str, EvalResultEntry]:
    """Per file path, the entry of each benchmark whose value is a full-run one (`runs`: the run each
    benchmark's value comes from; `origins`: its source). Smoke-run values get none."""
    return {
        path_of(spec): entry(spec, runs[spec.name], origins[spec.name])
        for spec in table
        if spec.name in runs and not origins[spec.name].smoke and spec.name in runs[spec.name].scores
    }


def _is_ours(item: Any, ours: EvalResultEntry) -> bool:
    """An entry evalsuite wrote for the same benchmark (same dataset and task, named after the protocol)."""
    if not isinstance(item, dict):
        return False
    dataset, source = item.get("dataset") or {}, item.get("source") or {}
    return (
        isinstance(dataset, dict)
        and (dataset.get("id"), dataset.get("task_id")) == (ours.dataset_id, ours.task_id)
        and str((source if isinstance(source, dict) else {}).get("name", "")).startswith(PROTOCOL)
    )


def render(ours: EvalResultEntry, old: str | None = None, where: str = "") -> str:
    """The file's text: `old`'s entries with ours in place of the one evalsuite wrote before (entries of
    other evaluations are kept, in order), or ours alone. `old` unchanged when nothing changes."""
    import yaml
    from huggingface_hub import eval_result_entries_to_yaml

    mine = eval_result_entries_to_yaml([ours])[0]
    items: list[Any] = []
    if old is not None:
        try:
            items = yaml.safe_load(old) or []
        except yaml.YAMLError as exc:
            raise CardError(f"{where}: not valid YAML ({exc.__class__.__name__}); fix or remove the file") from None
        if not isinstance(items, list):
            raise CardError(f"{where}: holds no list of results (the .eval_results format); fix or remove the file")
    kept = [item for item in items if not _is_ours(item, ours)]
    new = [*kept, mine]
    if old is not None and items == new:
        return old
    return yaml.safe_dump(new, sort_keys=False, allow_unicode=True, width=1000)


def files_for(
    runs: Mapping[str, RunResult],
    origins: Mapping[str, Origin],
    existing: Mapping[str, str | None],
    table: Sequence[BenchmarkSpec] = BENCHMARKS,
    where: str = "",
) -> dict[str, str]:
    """Path in the repo -> text of every .eval_results file the runs give, merged with the `existing` text
    of each path (None: no such file yet); `where` says where the paths are, in messages."""
    found = entries(runs, origins, table)
    return {path: render(e, existing.get(path), f"{where}{path}") for path, e in found.items()}


def read_local(root: Path, paths: list[str]) -> dict[str, str | None]:
    return {p: (root / p).read_text(encoding="utf-8") if (root / p).is_file() else None for p in paths}


def write_files(root: Path, files: Mapping[str, str]) -> list[str]:
    """Write each file under `root` atomically, a changed one first copied to `<file>.bak` (and the first
    time to `<file>.orig`); returns the paths written (unchanged files are left alone)."""
    return [rel for rel, text in files.items() if replace_keeping_old(root / rel, text)]


def run_files(run: RunResult, source_url: str, table: Sequence[BenchmarkSpec] = BENCHMARKS) -> dict[str, str]:
    """The .eval_results files of one run directory: each value's source is the run's results.json."""
    from evalsuite.card.source import origins_of

    runs = dict.fromkeys(run.scores, run)
    return files_for(runs, origins_of(runs, lambda r: source_url), {}, table)
