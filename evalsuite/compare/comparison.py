"""Compare runs and published model cards: scores, deltas against a baseline, MMLU per subject and
paired significance as pandas DataFrames; `evalsuite compare` prints them or writes compare.md + PNGs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite import __version__
from evalsuite.benchmarks.table import BENCHMARK_NAMES, BENCHMARKS, BY_NAME
from evalsuite.compare.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED, paired_test
from evalsuite.compare.verdict import PairedVerdict, legend
from evalsuite.errors import CompareError
from evalsuite.naming import display_name
from evalsuite.pipeline.rundir import RESULTS_ROOT
from evalsuite.results import RunResult, load_run
from evalsuite.results.fingerprint import Fingerprint, same_prompts

if TYPE_CHECKING:
    import pandas as pd

AVERAGE = "average"
COMPARE_DIR = "compare"  # under results/
# The benchmark whose per-config scores get a drill-down (MMLU's subjects), as the table says.
SUBJECTS_OF = next(spec.name for spec in BENCHMARKS if spec.has_subject_drilldown)
# Columns of the significance table that hold scores (fractions), shown as percentages.
SCORE_COLUMNS = ("baseline_score", "score", "delta", "ci_low", "ci_high")
# The significance table: column -> (PairedResult field, dtype). Object columns keep None where
# pandas 3 would turn a missing string into NaN: `reason` is None exactly when the paired test ran.
SIGNIFICANCE_COLUMNS: dict[str, tuple[str, Any]] = {
    "metric": ("metric", object),
    "n_docs": ("n_docs", "Int64"),
    "baseline_score": ("score_a", float),
    "score": ("score_b", float),
    "delta": ("delta", float),
    "ci_low": ("ci_low", float),
    "ci_high": ("ci_high", float),
    "significant": ("significant", object),  # the interval excludes 0, by more than float rounding
    "within_rounding": ("within_rounding", object),  # every document within float rounding of the baseline
    "identical": ("identical", object),  # every document bit for bit the baseline's
    "verdict": ("verdict", object),  # evalsuite.compare.verdict.PairedVerdict, its legend in the report
    "mcnemar_p": ("mcnemar_p", float),
    "baseline_only": ("only_a", "Int64"),  # documents only the baseline got right
    "model_only": ("only_b", "Int64"),
    "reason": ("reason", object),
}

Source = str | Path | RunResult


# --- loading and labels -------------------------------------------------------------------------


def load(source: str | Path) -> RunResult:
    """A run directory, or a model card (a README.md file) whose model-index holds published scores."""
    path = Path(source)
    if path.is_dir():
        return load_run(path)
    if path.is_file():
        from evalsuite.card import read_card

        return read_card(path)
    raise CompareError(
        f"{path}: no such run directory or model card; pass run directories "
        "(results/<model>/<timestamp>) or model card files (README.md)"
    )


def find_runs(root: str | Path = RESULTS_ROOT) -> list[Path]:
    """Every complete run directory under `root` (those holding results.json), sorted by path."""
    root = Path(root)
    runs = sorted(p.parent for p in root.glob("**/results.json") if COMPARE_DIR not in p.relative_to(root).parts)
    if not runs:
        raise CompareError(f"{root}: holds no run directories; run `make eval` first or pass run directories")
    return runs


def _name(run: RunResult) -> str:
    name = display_name(run.model.id)
    return f"{name} (card)" if run.provenance.source == "card" else name


def labels(runs: Sequence[RunResult]) -> list[str]:
    """A short unique row label per run: the model name, with the run directory when a model repeats."""
    names = [_name(r) for r in runs]
    named = [
        f"{n} [{r.path.name if r.path else i + 1}]" if names.count(n) > 1 else n
        for i, (n, r) in enumerate(zip(names, runs, strict=True))
    ]
    return [f"{n} #{i + 1}" if named.count(n) > 1 else n for i, n in enumerate(named)]


# --- tables -------------------------------------------------------------------------------------


def score_table(runs: Sequence[RunResult], row_labels: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run: the six leaderboard scores and their average (fractions; NaN where missing)."""
    import pandas as pd

    rows = {
        label: [_value(run, name) for name in BENCHMARK_NAMES] + [_nan(run.average)]
        for label, run in zip(row_labels or labels(runs), runs, strict=True)
    }
    return _frame(pd.DataFrame.from_dict(rows, orient="index", columns=[*BENCHMARK_NAMES, AVERAGE]))


def stderr_table(runs: Sequence[RunResult], row_labels: Sequence[str] | None = None) -> pd.DataFrame:
    """The standard error of each score in score_table (NaN for cards and single-document benchmarks)."""
    import pandas as pd

    rows = {
        label: [_nan(run.scores[n].stderr) if n in run.scores else math.nan for n in BENCHMARK_NAMES]
        for label, run in zip(row_labels or labels(runs), runs, strict=True)
    }
    return _frame(pd.DataFrame.from_dict(rows, orient="index", columns=list(BENCHMARK_NAMES)))


def delta_table(scores: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Each other row of a score table minus the baseline row (fractions; +0.01 is one point better)."""
    if baseline not in scores.index:
        rows = ", ".join(scores.index)
        raise CompareError(f"baseline {baseline!r} is not a row of the table; use one of its rows: {rows}")
    return scores.drop(index=baseline) - scores.loc[baseline]


def subject_table(
    runs: Sequence[RunResult], row_labels: Sequence[str] | None = None, benchmark: str = SUBJECTS_OF
) -> pd.DataFrame:
    """Runs x subjects of a multi-config benchmark (MMLU's 57), for runs that report them (cards do not)."""
    import pandas as pd

    spec = BY_NAME[benchmark]
    rows = {
        label: [run.scores[benchmark].subscores.get(c, math.nan) for c in spec.configs]
        for label, run in zip(row_labels or labels(runs), runs, strict=True)
        if benchmark in run.scores and run.scores[benchmark].subscores
    }
    return _frame(pd.DataFrame.from_dict(rows, orient="index", columns=list(spec.configs), dtype=float))


def significance(
    a: RunResult,
    b: RunResult,
    *,
    row_labels: tuple[str, str] = ("a", "b"),
    seed: int = DEFAULT_SEED,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Run b against run a, one row per benchmark: paired bootstrap interval of the difference, McNemar's
    exact p-value for 0/1 metrics, or the `reason` there is no paired test (other documents, a card)."""
    import pandas as pd

    results = [
        paired_test(a, b, spec, labels=row_labels, n_resamples=n_resamples, seed=seed, confidence=confidence)
        for spec in BENCHMARKS
    ]
    index = pd.Index([r.benchmark for r in results], name="benchmark")
    columns = {
        column: pd.Series([getattr(r, field) for r in results], index=index, dtype=dtype)
        for column, (field, dtype) in SIGNIFICANCE_COLUMNS.items()
    }
    return pd.DataFrame(columns)


def percent(frame: pd.DataFrame) -> pd.DataFrame:
    """Scores as percentages with 2 decimals, for display (the API's fractions are untouched)."""
    cols = [c for c in frame.columns if c in (*BENCHMARK_NAMES, AVERAGE, *SCORE_COLUMNS) or c in _subjects()]
    out = frame.copy()
    out[cols] = (100 * frame[cols].astype(float)).round(2)
    return out


# --- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Comparison:
    """Everything `evalsuite compare` shows; the DataFrames hold fractions, indexed by run label."""

    runs: tuple[RunResult, ...]
    labels: tuple[str, ...]
    sources: tuple[str, ...]  # what each run was loaded from, as given
    baseline: str
    seed: int
    n_resamples: int
    confidence: float
    scores: pd.DataFrame
    stderr: pd.DataFrame
    deltas: pd.DataFrame
    subjects: pd.DataFrame
    significance: pd.DataFrame  # indexed by (model, benchmark); each model against the baseline
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    # Markdown, one section per method so that the notebook can show each one.

    def runs_md(self) -> str:
        rows = [
            [
                label,
                run.provenance.source,
                source,
                "" if run.provenance.limit is None else str(run.provenance.limit),
            ]
            for label, run, source in zip(self.labels, self.runs, self.sources, strict=True)
        ]
        return _md_table(["model", "kind", "from", "limit"], rows)

    def scores_md(self) -> str:
        rows = [
            [label, *(_pct(v) for v in row)]
            for label, row in zip(self.scores.index, self.scores.to_numpy(), strict=True)
        ]
        return _md_table(["model", *self.scores.columns], rows, align_from=1)

    def deltas_md(self) -> str:
        rows = [
            [label, *(_pct(v, "+") for v in row)]
            for label, row in zip(self.deltas.index, self.deltas.to_numpy(), strict=True)
        ]
        return _md_table([f"model - {self.baseline}", *self.deltas.columns], rows, align_from=1)

    def significance_md(self) -> str:
        by_model: dict[str, list[Mapping[Any, Any]]] = {}
        for record in self.significance.reset_index().to_dict("records"):
            by_model.setdefault(str(record["model"]), []).append(record)
        rows = []
        for model, records in by_model.items():
            reasons = {str(r["reason"]).removeprefix(f"{r['benchmark']}: ") for r in records}
            if len(reasons) == 1 and not any(_missing(r["reason"]) for r in records):  # a card: one line, not six
                rows.append([model, "all", "", "", "", "", "", f"{PairedVerdict.NO_TEST}: {reasons.pop()}"])
                continue
            rows += [[model, str(r["benchmark"]), *_significance_cells(r)] for r in records]
        level = f"{100 * self.confidence:g}%"
        header = [
            "model",
            "benchmark",
            "docs",
            "delta",
            f"{level} CI",
            "McNemar p",
            "baseline only / model only",
            "verdict",
        ]
        return _md_table(header, rows, align_from=2)

    def prompts_md(self) -> str:
        """Per benchmark, whether each run asked the baseline's questions (equal prompt fingerprints)."""
        base = self.runs[self.labels.index(self.baseline)]
        rows = [
            [label, *(same_prompts(_fingerprint(base, b.name), _fingerprint(run, b.name)) for b in BENCHMARKS)]
            for label, run in zip(self.labels, self.runs, strict=True)
            if run is not base
        ]
        return _md_table([f"model vs {self.baseline}", *BENCHMARK_NAMES], rows)

    def subjects_md(self) -> str:
        if self.subjects.empty:
            return "No run reports MMLU subjects.\n"
        table = self.subjects.T
        rows = [[subject, *(_pct(v) for v in row)] for subject, row in zip(table.index, table.to_numpy(), strict=True)]
        return _md_table(["subject", *table.columns], rows, align_from=1)

    def to_markdown(self, figures: dict[str, str] | None = None, subjects: bool = True) -> str:
        metrics = "; ".join(f"{b.name} = {b.title}, {b.metric}" for b in BENCHMARKS)
        level = f"{100 * self.confidence:g}%"
        parts = [
            f"# Comparison of {len(self.runs)} runs\n",
            f"Made {self.created_at} by evalsuite {__version__}. Scores in %, leaderboard metrics "
            f"({metrics}); the average needs all six.\n",
            "## Runs\n",
            self.runs_md(),
            "## Scores (%)\n",
            self.scores_md(),
            f"## Differences to {self.baseline} (percentage points)\n",
            self.deltas_md(),
            f"## Paired significance against {self.baseline}\n",
            f"On the documents both runs evaluated with the same prompts: {level} paired bootstrap "
            f"percentile interval of the difference ({self.n_resamples} resamples, seed {self.seed}; MMLU "
            "resampled within subjects, macro mean), and McNemar's exact test for accuracy metrics (mc2 is "
            "continuous). The verdicts:\n",
            legend(),
            self.significance_md(),
            f"## Prompts against {self.baseline}\n",
            self.prompts_md(),
        ]
        if subjects:
            parts += ["## MMLU per subject (%)\n", self.subjects_md()]
        if figures:
            parts += ["## Figures\n", "".join(f"![{name}]({file})\n\n" for name, file in figures.items())]
        return "\n".join(parts)


def compare(
    sources: Sequence[Source],
    baseline: str | int | None = None,
    *,
    seed: int = DEFAULT_SEED,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Comparison:
    """Compare runs and cards (paths or loaded RunResults); deltas and paired tests are against `baseline`
    (a path, label or model id as given, or an index; default: the first)."""
    if not sources:
        raise CompareError("nothing to compare; pass run directories or model card files")
    runs = tuple(s if isinstance(s, RunResult) else load(s) for s in sources)
    names = tuple(labels(runs))
    given = tuple(str(s.path or "") if isinstance(s, RunResult) else str(s) for s in sources)
    base = _baseline_index(baseline, given, runs, names)
    scores = score_table(runs, names)
    frames = [
        significance(
            runs[base],
            run,
            row_labels=(names[base], label),
            seed=seed,
            n_resamples=n_resamples,
            confidence=confidence,
        )
        .assign(model=label)
        .set_index("model", append=True)
        .reorder_levels(["model", "benchmark"])
        for i, (label, run) in enumerate(zip(names, runs, strict=True))
        if i != base
    ]
    return Comparison(
        runs=runs,
        labels=names,
        sources=given,
        baseline=names[base],
        seed=seed,
        n_resamples=n_resamples,
        confidence=confidence,
        scores=scores,
        stderr=stderr_table(runs, names),
        deltas=delta_table(scores, names[base]),
        subjects=subject_table(runs, names),
        significance=_concat(frames),
    )


# --- helpers ------------------------------------------------------------------------------------


def _baseline_index(
    baseline: str | int | None, given: Sequence[str], runs: Sequence[RunResult], names: Sequence[str]
) -> int:
    if baseline is None:
        return 0
    if isinstance(baseline, int):
        if not 0 <= baseline < len(runs):
            raise CompareError(f"baseline index {baseline} is out of range; there are {len(runs)} runs")
        return baseline
    target = Path(baseline).resolve() if Path(baseline).exists() else None
    hits = {
        i
        for i, (src, run, name) in enumerate(zip(given, runs, names, strict=True))
        if baseline in (src, name, run.model.id) or (target is not None and src and Path(src).resolve() == target)
    }
    if len(hits) != 1:
        how = "matches none" if not hits else f"matches {len(hits)}"
        choices = ", ".join(names)
        raise CompareError(f"--baseline {baseline!r}: {how} of the compared runs; give a path or one of: {choices}")
    return hits.pop()


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    if frames:
        return pd.concat(frames)
    index = pd.MultiIndex.from_tuples([], names=["model", "benchmark"])
    return pd.DataFrame(index=index, columns=list(SIGNIFICANCE_COLUMNS))  # one run: nothing to test


def _frame(df: pd.DataFrame) -> pd.DataFrame:
    df.index.name = "model"
    return df.astype(float)


def _subjects() -> tuple[str, ...]:
    return BY_NAME[SUBJECTS_OF].configs


def _value(run: RunResult, name: str) -> float:
    return run.scores[name].value if name in run.scores else math.nan


def _fingerprint(run: RunResult, name: str) -> Fingerprint | None:
    return run.scores[name].fingerprint if name in run.scores else None


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _significance_cells(r: Mapping[Any, Any]) -> list[str]:
    if not _missing(r["reason"]):
        return ["", "", "", "", "", f"{PairedVerdict.NO_TEST}: {r['reason']}"]
    ci = f"[{_pct(r['ci_low'], '+')}, {_pct(r['ci_high'], '+')}]"
    p = "" if _missing(r["mcnemar_p"]) else f"{r['mcnemar_p']:.4g}"
    discordant = "" if _missing(r["baseline_only"]) else f"{r['baseline_only']} / {r['model_only']}"
    return [str(r["n_docs"]), _pct(r["delta"], "+"), ci, p, discordant, str(r["verdict"])]


def _pct(value: Any, sign: str = "") -> str:
    return "" if _missing(value) else f"{100 * float(value):{sign}.2f}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align_from: int | None = None) -> str:
    """A GitHub markdown table; columns from `align_from` on are right-aligned (numbers)."""
    rule = ["---:" if align_from is not None and i >= align_from else "---" for i in range(len(header))]
    lines = [header, rule, *rows]
    return "".join("| " + " | ".join(str(c).replace("|", "\\|") for c in line) + " |\n" for line in lines)
