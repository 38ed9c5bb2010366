"""`evalsuite verify` and the policy on the reference outputs, without a second machine.

Another CPU is simulated by perturbing every reference log-likelihood by a seeded random amount within
ε and recomputing the per-document metrics and the scores from them with v1's formulas (written out
here). That must pass; each single mutation on top of it must fail, through the API and the CLI.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import GOLDEN, GOLDEN_MODELS, run_cli
from evalsuite.fidelity.tolerance import Verdict
from evalsuite.fidelity.verify import verify

EPS = 1e-4
SEED = 20231
V1_TASKS = ("arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc", "winogrande", "gsm8k")
# The leaderboard metric of each v1 task.
V1_METRIC = {"arc_challenge": "acc_norm", "hellaswag": "acc_norm", "mmlu": "acc", "truthfulqa_mc": "mc2",
             "winogrande": "acc", "gsm8k": "acc"}  # fmt: skip


def _argmax(xs: list[float]) -> int:
    return max(range(len(xs)), key=lambda i: (xs[i], -i))  # the first of equal maxima, as numpy's


def _v1_metrics(row: dict[str, Any]) -> dict[str, float]:
    """v1's per-document metrics from the row's log-likelihoods (MultipleChoiceTask, winogrande, truthfulqa)."""
    reqs = row["requests"]
    if "mc2_labels" in row:
        mc1 = [r["loglikelihood"] for r in reqs if r.get("target_set") == "mc1"]
        mc2 = [r["loglikelihood"] for r in reqs if r.get("target_set") == "mc2"]
        split = row["mc2_labels"].index(0)  # v1: everything from the first false label on is false
        p_true = [math.exp(x) for x in mc2[:split]]
        p_false = [math.exp(x) for x in mc2[split:]]
        return {"mc1": float(_argmax(mc1) == 0), "mc2": sum(p / (sum(p_true) + sum(p_false)) for p in p_true)}
    if "loglikelihood" not in reqs[0]:
        return dict(row["metrics"])  # generation: nothing to recompute
    lls = [r["loglikelihood"] for r in reqs]
    metrics = {"acc": float(_argmax(lls) == int(row["gold"]))}
    if "acc_norm" in row["metrics"]:
        # v1 divides by the choice's length in characters; the continuation is " " + choice.
        per_char = [ll / len(r["continuation"][1:]) for ll, r in zip(lls, reqs, strict=True)]
        metrics["acc_norm"] = float(_argmax(per_char) == row["gold"])
    return metrics


def _v1_scores(rows_by_task: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    scores: dict[str, Any] = {}
    for task, rows in rows_by_task.items():
        metric = V1_METRIC[task]
        by_subject: dict[str | None, list[float]] = {}
        for row in rows:
            by_subject.setdefault(row.get("subject"), []).append(row["metrics"][metric])
        means = {s: sum(v) / len(v) for s, v in by_subject.items()}
        scores[task] = {metric: sum(means.values()) / len(means)}
    return scores


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def perturbed_reference(model: str, out: Path, seed: int = SEED) -> Path:
    """The reference with every ll moved by U(-ε, ε), metrics and scores recomputed, in the golden format."""
    rng = random.Random(seed)
    rows_by_task = {}
    for task in V1_TASKS:
        rows = _read(GOLDEN / "golden" / model / "samples" / f"{task}.jsonl")
        for row in rows:
            for req in row["requests"]:
                if "loglikelihood" in req:
                    req["loglikelihood"] += rng.uniform(-EPS, EPS)
            row["metrics"] = _v1_metrics(row)
        rows_by_task[task] = rows
    (out / "samples").mkdir(parents=True)
    for task, rows in rows_by_task.items():
        _write(out / "samples" / f"{task}.jsonl", rows)
    (out / "scores.json").write_text(json.dumps(_v1_scores(rows_by_task)), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {m: perturbed_reference(m, tmp_path_factory.mktemp("perturbed") / m) for m in GOLDEN_MODELS}


def test_v1_formulas_here_reproduce_the_reference_metrics() -> None:
    # The formulas that recompute the perturbed metrics are v1's: on the unperturbed rows they give the
    # reference's own metrics and scores.
    for model in GOLDEN_MODELS:
        rows_by_task = {t: _read(GOLDEN / "golden" / model / "samples" / f"{t}.jsonl") for t in V1_TASKS}
        for rows in rows_by_task.values():
            for row in rows:
                assert _v1_metrics(row) == pytest.approx(row["metrics"], rel=1e-12, abs=0), (model, row["doc_id"])
        reference = json.loads((GOLDEN / "golden" / model / "scores.json").read_text(encoding="utf-8"))
        for task, score in _v1_scores(rows_by_task).items():
            assert score[V1_METRIC[task]] == pytest.approx(reference[task][V1_METRIC[task]], rel=1e-12)


@pytest.mark.parametrize("model", GOLDEN_MODELS)
def test_another_machine_within_epsilon_passes(perturbed: dict[str, Path], model: str) -> None:
    report = verify(perturbed[model], GOLDEN / "golden" / model)
    assert report.ok, [v.differences[:3] for v in report.verdicts]
    assert len(report.verdicts) == 6
    lls = [v for v in report.verdicts if v.n_loglikelihoods]
    assert all(v.verdict is Verdict.WITHIN and 0 < v.max_abs_dll <= EPS for v in lls)
    assert run_cli("verify", str(perturbed[model]), "--against", str(GOLDEN / "golden" / model)) == 0


# --- mutations: each one alone must fail -------------------------------------------------------


def _edit(path: Path, doc_index: int, change: Callable[[dict[str, Any]], None]) -> None:
    rows = _read(path)
    change(rows[doc_index])
    _write(path, rows)


def _ll_off_by_10_eps(row: dict[str, Any]) -> None:
    row["requests"][0]["loglikelihood"] += 10 * EPS


def _context_byte(row: dict[str, Any]) -> None:
    ctx = row["requests"][1]["context"]
    row["requests"][1]["context"] = ctx[:-1] + ("?" if ctx[-1] != "?" else "!")


def _generation(row: dict[str, Any]) -> None:
    row["requests"][0]["generation"] += "1"


def _far_from_a_tie(rows: list[dict[str, Any]]) -> int:
    """A document whose reference acc_norm margin is at least 10ε: flipping it is no near-tie."""
    for i, row in enumerate(rows):
        scores = sorted((r["loglikelihood"] / len(r["continuation"][1:]) for r in row["requests"]), reverse=True)
        if scores[0] - scores[1] >= 10 * EPS:
            return i
    raise AssertionError("no document far from a tie")


def _flip(row: dict[str, Any]) -> None:
    row["metrics"]["acc_norm"] = 1.0 - row["metrics"]["acc_norm"]


MUTATIONS = {
    "ll_off_by_10_eps": ("arc", _ll_off_by_10_eps),
    "context_byte": ("arc", _context_byte),
    "flipped_prediction": ("arc", _flip),
    "generation": ("gsm8k", _generation),
}
SAMPLE_FILE = {"arc": "arc_challenge", "gsm8k": "gsm8k"}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_each_mutation_of_the_perturbed_reference_fails(
    perturbed: dict[str, Path], tmp_path: Path, mutation: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = "tiny-moe"  # its GSM8k generations are not empty
    copy = shutil.copytree(perturbed[model], tmp_path / "copy")
    benchmark, change = MUTATIONS[mutation]
    path = copy / "samples" / f"{SAMPLE_FILE[benchmark]}.jsonl"
    rows = _read(path)
    index = _far_from_a_tie(rows) if mutation == "flipped_prediction" else 0
    _edit(path, index, change)

    report = verify(copy, GOLDEN / "golden" / model)
    assert not report.ok
    failed = {v.benchmark: v for v in report.verdicts if v.verdict is Verdict.DIFFERS}
    assert list(failed) == [benchmark]
    assert rows[index]["doc_id"] in {d.doc[1] for d in failed[benchmark].differences if d.doc}
    assert run_cli("verify", str(copy), "--against", str(GOLDEN / "golden" / model)) == 1
    assert f"{benchmark:<11} differs" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_each_mutation_of_a_run_fails(
    golden_runs: Callable[[str], Path], tmp_path: Path, mutation: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same mutations on a copy of a real run (the run-directory format).
    model = "tiny-moe"
    copy = shutil.copytree(golden_runs(model), tmp_path / "run")
    capsys.readouterr()  # the run's own output, when this test made it
    benchmark, change = MUTATIONS[mutation]
    path = copy / "samples" / f"{benchmark}.jsonl"
    index = _far_from_a_tie(_read(path)) if mutation == "flipped_prediction" else 0
    _edit(path, index, change)
    assert run_cli("verify", str(copy), "--against", str(GOLDEN / "golden" / model), "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert [b["benchmark"] for b in report["benchmarks"] if b["verdict"] == "differs"] == [benchmark]


def test_verify_rejects_a_directory_of_neither_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("verify", str(tmp_path), "--against", str(GOLDEN / "golden" / "tiny-moe")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert run_cli("verify", str(tmp_path), "--against", str(tmp_path), "--tol", "-1") == 2


def test_a_limit_run_is_checked_on_its_documents_with_subset(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = GOLDEN / "golden" / "tiny-moe"
    assert run_cli("verify", str(tiny_run), "--against", str(golden)) == 1  # 3 docs per task, not all
    assert "--subset" in capsys.readouterr().out
    assert run_cli("verify", str(tiny_run), "--against", str(golden), "--subset") == 0
    out = capsys.readouterr().out
    assert "left out" in out and "same result under the tolerance policy" in out
    report = verify(tiny_run, golden, subset=True)
    assert report.ok and report.left_out and all(v.n_docs > 0 for v in report.verdicts)
    # --subset still checks what it compares: one log-likelihood of the run moved by 10ε fails
    copy = shutil.copytree(tiny_run, tmp_path / "run")
    samples = copy / "samples" / "arc.jsonl"
    rows = [json.loads(x) for x in samples.read_text().splitlines()]
    rows[0]["requests"][0]["loglikelihood"] += 1e-3
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_cli("verify", str(copy), "--against", str(golden), "--subset") == 1


def test_subset_still_checks_the_runs_own_score(tiny_run: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_run, tmp_path / "run")
    results = json.loads((copy / "results.json").read_text())
    results["benchmarks"]["arc"]["value"] = 0.99  # not the mean of its documents
    (copy / "results.json").write_text(json.dumps(results))
    report = verify(copy, GOLDEN / "golden" / "tiny-moe", subset=True)
    assert not report.ok
    assert [v.verdict for v in report.verdicts if v.benchmark == "arc"] == [Verdict.DIFFERS]


def test_a_run_lacking_a_benchmark_of_the_reference_differs_unless_subset(
    perturbed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = GOLDEN / "golden" / "tiny-moe"
    partial = shutil.copytree(perturbed["tiny-moe"], tmp_path / "partial")
    (partial / "samples" / "gsm8k.jsonl").unlink()  # a run of five benchmarks, all five within tolerance
    report = verify(partial, golden)
    assert not report.ok and report.missing == ("gsm8k",)
    assert run_cli("verify", str(partial), "--against", str(golden)) == 1
    out = capsys.readouterr().out
    assert "gsm8k       missing" in out and "verdict: DIFFERS" in out
    assert run_cli("verify", str(partial), "--against", str(golden), "--subset") == 0  # the user named a subset
    assert "gsm8k       skipped           not in the run (--subset)" in capsys.readouterr().out
