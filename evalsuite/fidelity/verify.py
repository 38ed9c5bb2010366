"""`evalsuite verify`: a run against a reference (a directory in the golden format or another run),
benchmark by benchmark under the tolerance policy.

A golden-format directory holds `scores.json` ({v1 task: {metric: value}}) and `samples/<v1 task>.jsonl`
(one line per document with its `requests` in v1's order and its `metrics`); a run directory holds
`results.json` and `samples/<benchmark>.jsonl`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.errors import RunDirError
from evalsuite.fidelity.tolerance import (
    BenchmarkVerdict,
    Tolerance,
    Verdict,
    compare_benchmark,
    doc_label,
)
from evalsuite.results import RESULTS_FILE, SAMPLES_DIR, DocRecord, RequestRecord, load_run, read_samples

GOLDEN_SCORES = "scores.json"
GOLDEN_RUN_INFO = "run_info.json"
_REQUEST_FIELDS = ("context", "continuation", "loglikelihood", "generation")


@dataclass(frozen=True)
class Outputs:
    """Per benchmark: the documents and the stated score, from either directory format."""

    path: Path
    kind: str  # "run" or "golden"
    docs: Mapping[str, tuple[DocRecord, ...]]
    scores: Mapping[str, float | None]
    dtype: str | None  # what the model computed in, as recorded (None: not recorded)


@dataclass(frozen=True)
class VerifyReport:
    run: Path
    against: Path
    tolerance: Tolerance
    verdicts: tuple[BenchmarkVerdict, ...]
    skipped: Mapping[str, str] = field(default_factory=dict)  # benchmark -> why it was not compared
    left_out: Mapping[str, int] = field(default_factory=dict)  # --subset: reference documents not in the run
    missing: tuple[str, ...] = ()  # benchmarks of the reference the run lacks (a difference, unless --subset)

    @property
    def ok(self) -> bool:
        return not self.missing and all(v.verdict is not Verdict.DIFFERS for v in self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run),
            "against": str(self.against),
            "epsilon": self.tolerance.epsilon,
            "precision": self.tolerance.precision.name if self.tolerance.precision else "float32",
            "policy": self.tolerance.describe(),
            "ok": self.ok,
            "benchmarks": [v.to_dict() for v in self.verdicts],
            "skipped": dict(self.skipped),
            "left_out": dict(self.left_out),
            "missing": list(self.missing),
        }


def _golden_doc(row: Mapping[str, Any]) -> DocRecord:
    # v1 listed TruthfulQA's mc1 requests first (target_set "mc1"); runs record them apart.
    requests = [{k: r[k] for k in _REQUEST_FIELDS if k in r} for r in row["requests"]]
    mc1 = [req for req, r in zip(requests, row["requests"], strict=True) if r.get("target_set") == "mc1"]
    main = [
        RequestRecord(**req) for req, r in zip(requests, row["requests"], strict=True) if r.get("target_set") != "mc1"
    ]
    known = {"doc_id", "subject", "requests", "metrics"}
    extra = {k: v for k, v in row.items() if k not in known}
    if mc1:
        extra["mc1_requests"] = mc1
    return DocRecord(
        doc_id=int(row["doc_id"]),
        subject=row.get("subject"),
        requests=tuple(main),
        metrics={k: float(v) for k, v in row["metrics"].items()},
        extra=extra,
    )


def _load_golden(path: Path) -> Outputs:
    try:
        scores = json.loads((path / GOLDEN_SCORES).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path / GOLDEN_SCORES}: not valid JSON ({exc}); restore the reference files") from exc
    docs: dict[str, tuple[DocRecord, ...]] = {}
    stated: dict[str, float | None] = {}
    for spec in BENCHMARKS:
        samples = path / SAMPLES_DIR / f"{spec.v1_task}.jsonl"
        if not samples.is_file():
            continue
        try:
            lines = samples.read_text(encoding="utf-8").splitlines()
            docs[spec.name] = tuple(_golden_doc(json.loads(line)) for line in lines if line.strip())
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RunDirError(
                f"{samples}: malformed ({type(exc).__name__}: {exc}); each line needs doc_id, requests, metrics"
            ) from exc
        value = (scores.get(spec.v1_task) or {}).get(spec.metric)
        stated[spec.name] = None if value is None else float(value)
    return Outputs(path, "golden", docs, stated, _golden_dtype(path))


def _golden_dtype(path: Path) -> str | None:
    """The dtype in the v1 harness's model arguments (`..., dtype=bfloat16`); None where it is not named or
    `auto` (v1 then loaded the config's dtype, which the reference does not record: the run's decides)."""
    try:
        info = json.loads((path / GOLDEN_RUN_INFO).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    args = dict(part.strip().partition("=")[::2] for part in str(info.get("model_args", "")).split(","))
    dtype = args.get("dtype", "").strip()
    return None if dtype in ("", "auto") else dtype


def _load_run(path: Path) -> Outputs:
    run = load_run(path)
    docs = {name: tuple(read_samples(path, name)) for name in run.scores}
    return Outputs(path, "run", docs, {name: s.value for name, s in run.scores.items()}, run.model.dtype)


def load_outputs(path: str | Path) -> Outputs:
    """A run directory (results.json) or a golden-format directory (scores.json)."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such directory; pass a run directory or a reference directory")
    if (path / RESULTS_FILE).is_file():
        return _load_run(path)
    if (path / GOLDEN_SCORES).is_file():
        return _load_golden(path)
    raise RunDirError(
        f"{path}: neither a run directory ({RESULTS_FILE}) nor a reference directory ({GOLDEN_SCORES} + "
        f"{SAMPLES_DIR}/<v1 task>.jsonl); pass a directory written by `evalsuite run` or in the golden format"
    )


def verify(
    run: str | Path, against: str | Path, tolerance: Tolerance | None = None, *, subset: bool = False
) -> VerifyReport:
    """Compare every benchmark the two directories share. A benchmark of the reference that the run lacks
    is missing, a difference like a missing document; one only the run has is listed as skipped.
    `tolerance`: None picks the policy from the dtypes both directories record (Tolerance.for_dtypes).
    `subset`: check only the reference's benchmarks and documents the run has (a --limit or --benchmarks
    run), their scores recomputed on those documents."""
    ours, ref = load_outputs(run), load_outputs(against)
    if tolerance is None:
        tolerance = Tolerance.for_dtypes(ours.dtype, ref.dtype)
    verdicts, skipped, left_out, missing = [], {}, {}, []
    for spec in BENCHMARKS:
        if spec.name not in ours.docs and spec.name not in ref.docs:
            continue
        if spec.name not in ours.docs:
            if subset:
                skipped[spec.name] = "not in the run (--subset)"
            else:
                missing.append(spec.name)
        elif spec.name not in ref.docs:
            skipped[spec.name] = "not in the reference"
        else:
            reference = ref.docs[spec.name]
            stated = (ours.scores.get(spec.name), ref.scores.get(spec.name))
            if subset:
                keys = {d.key for d in ours.docs[spec.name]}
                kept = tuple(d for d in reference if d.key in keys)
                if len(kept) < len(reference):
                    left_out[spec.name] = len(reference) - len(kept)
                    reference, stated = kept, (stated[0], None)  # the reference's score is over other documents
            verdicts.append(compare_benchmark(spec, reference, ours.docs[spec.name], tolerance, stated_scores=stated))
    if not verdicts:
        raise RunDirError(f"{ours.path} and {ref.path} share no benchmark; nothing to verify")
    return VerifyReport(ours.path, ref.path, tolerance, tuple(verdicts), skipped, left_out, tuple(missing))


def format_report(report: VerifyReport, max_listed: int = 5) -> str:
    """One line per benchmark, then the near-ties and differences (the first `max_listed` of each)."""
    lines = [f"{report.run} against {report.against} ({report.tolerance.describe()})"]
    for v in report.verdicts:
        detail = f"{v.n_docs} docs, {v.n_loglikelihoods} lls"
        if v.verdict is Verdict.WITHIN or v.n_ll_changed:
            detail += f", {v.n_ll_changed} changed, max |Δll| {v.max_abs_dll:.3g}, {len(v.near_ties)} near-ties"
        if v.score_run is not None and v.score_reference is not None:
            detail += f"; score {100 * v.score_run:.2f} vs {100 * v.score_reference:.2f}"
        lines.append(f"{v.benchmark:<11} {v.verdict.value:<17} {detail}")
        for t in v.near_ties[:max_listed]:
            flip = f"{t.metric} {t.reference:g} -> {t.run:g} (margin {t.margin:.3g})"
            lines.append(f"    near-tie {doc_label(t.doc)}: {flip}")
        for d in v.differences[:max_listed]:
            lines.append(f"    {doc_label(d.doc)}: {d.what}")
        hidden = max(0, len(v.differences) - max_listed) + max(0, len(v.near_ties) - max_listed)
        if hidden:
            lines.append(f"    ... {hidden} more (see --json)")
    for name in report.missing:
        lines.append(f"{name:<11} missing           in the reference, not in the run (--subset: only what it has)")
    for name, why in report.skipped.items():
        lines.append(f"{name:<11} skipped           {why}")
    for name, n in report.left_out.items():
        lines.append(f"{name:<11} --subset          {n} reference documents not in the run were left out")
    lines.append("verdict: " + ("same result under the tolerance policy" if report.ok else "DIFFERS"))
    return "\n".join(lines) + "\n"
