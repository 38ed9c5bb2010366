"""bfloat16 against the v1 harness's own bfloat16 outputs (tests/data/golden-v1/golden-bf16/tiny-moe-sp,
made with `dtype=bfloat16` in v1's model arguments, batch size 1, on an AMD EPYC CPU).

The exact path (`--backend hf`, batch size 1) is v1's computation: on a CPU of the reference's kind it gives
the same bits. The fast backend passes `evalsuite verify` under the reduced-precision policy, which verify
picks from the dtypes the two directories record, and changes no more 0/1 outcomes than the exact path
itself does at batch size 8 (v1's own batch-size noise). Each kind of mutation of its run fails verify.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import GOLDEN, reference_run, run_cli
from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.fidelity.tolerance import Tolerance, Verdict
from evalsuite.fidelity.verify import load_outputs, verify
from evalsuite.precision import PRECISIONS

MODEL = "tiny-moe-sp"
REFERENCE = GOLDEN / "golden-bf16" / MODEL
BINARY = ("acc", "acc_norm", "mc1")
BF16 = ("--device", "cpu", "--dtype", "bfloat16")


def _cpu() -> tuple[str, set[str]]:
    """The CPU's model name and flags."""
    name, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return name, flags


# bfloat16 kernels differ between CPUs more than float32 ones: bit-identity is promised on the reference's
# kind, an AMD EPYC with native bfloat16 instructions (Zen 4).
CPU_NAME, CPU_FLAGS = _cpu()
SAME_KIND_OF_CPU = CPU_NAME.startswith("AMD EPYC") and "avx512_bf16" in CPU_FLAGS


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    made: dict[str, Path] = {}
    options = {
        "hf": ("--backend", "hf"),
        "hf-batch-8": ("--backend", "hf", "--batch-size", "8"),
        "fast": ("--backend", "fast", "--max-batch-tokens", "4096"),
    }

    def get(kind: str) -> Path:
        if kind not in made:
            made[kind] = reference_run(tmp_path_factory, MODEL, *BF16, *options[kind])
        return made[kind]

    return get


def other_outcomes(run: Path) -> int:
    """Documents whose 0/1 metrics differ from the reference's."""
    ours, ref = load_outputs(run), load_outputs(REFERENCE)
    count = 0
    for spec in BENCHMARKS:
        mine = {d.key: d.metrics for d in ours.docs[spec.name]}
        for doc in ref.docs[spec.name]:
            keys = [k for k in doc.metrics if k in BINARY]  # GSM8k: its acc
            count += any(mine[doc.key].get(k) != doc.metrics[k] for k in keys)
    return count


@pytest.mark.slow
def test_the_exact_path_in_bfloat16_is_v1s_computation(runs: Callable[[str], Path]) -> None:
    run = runs("hf")
    assert json.loads((run / "results.json").read_text())["model"]["dtype"] == "bfloat16"
    if SAME_KIND_OF_CPU:
        report = verify(run, REFERENCE, Tolerance(0.0))  # the same bits
        assert [v.verdict for v in report.verdicts] == [Verdict.EXACT] * len(BENCHMARKS), report.verdicts
    else:  # another CPU's bfloat16 kernels: the policy, which is what verify applies
        assert verify(run, REFERENCE).ok, f"on {CPU_NAME}"


@pytest.mark.slow
def test_the_fast_backend_passes_the_reduced_precision_policy(
    runs: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run = runs("fast")
    report = verify(run, REFERENCE)
    assert report.tolerance.precision == PRECISIONS["bfloat16"]  # from the dtypes both record
    assert report.ok, [v.differences[:3] for v in report.verdicts]
    # The rounding of a reused prefix moves some lls, but no more outcomes than v1's own batch-size noise.
    assert other_outcomes(run) <= other_outcomes(runs("hf-batch-8"))
    # In bfloat16 every generation takes the exact path, one prompt at a time as v1 generated.
    costs = json.loads((run / "results.json").read_text())["engine"]["benchmarks"]
    assert costs["gsm8k"]["exact_path_requests"] == costs["gsm8k"]["requests"] == 25
    assert all(
        costs[b.name]["exact_path_requests"] < costs[b.name]["requests"] for b in BENCHMARKS if b.name != "gsm8k"
    )
    # ...and the float32 policy would call it different: the bf16 policy is what lets it through.
    assert not verify(run, REFERENCE, Tolerance()).ok
    capsys.readouterr()
    assert run_cli("verify", str(run), "--against", str(REFERENCE)) == 0
    assert "bfloat16: ε = 4 bfloat16 spacings" in capsys.readouterr().out


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _far_from_a_tie(rows: list[dict[str, Any]]) -> int:
    """A document whose best acc_norm choice beats every other by twice what the bf16 ε can move the two
    (4 spacings of each ll, per character of its choice)."""
    bf16 = PRECISIONS["bfloat16"]
    for i, row in enumerate(rows):
        lls = [r["loglikelihood"] for r in row["requests"]]
        chars = [len(r["continuation"][1:]) for r in row["requests"]]
        scores = [ll / n for ll, n in zip(lls, chars, strict=True)]
        moves = [bf16.spacings * bf16.spacing(ll) / n for ll, n in zip(lls, chars, strict=True)]
        best = scores.index(max(scores))
        if all(scores[best] - scores[k] >= 2 * (moves[best] + moves[k]) for k in range(len(lls)) if k != best):
            return i
    raise AssertionError("no document far from a tie")


def _flip(row: dict[str, Any]) -> None:
    row["metrics"]["acc_norm"] = 1.0 - row["metrics"]["acc_norm"]


def _generation_token(row: dict[str, Any]) -> None:
    text = row["requests"][0]["generation"]
    row["requests"][0]["generation"] = text[:-1] + ("a" if text[-1:] != "a" else "b")


def _prompt(row: dict[str, Any]) -> None:
    ctx = row["requests"][0]["context"]
    row["requests"][0]["context"] = ctx[:-1] + ("?" if ctx[-1] != "?" else "!")


def _ll_beyond_epsilon(row: dict[str, Any]) -> None:
    ll = row["requests"][0]["loglikelihood"]
    bf16 = PRECISIONS["bfloat16"]
    row["requests"][0]["loglikelihood"] = ll - (bf16.spacings + 1) * bf16.spacing(ll)


MUTATIONS = {
    "flipped outcome outside the near-tie band": ("arc", _flip),
    "changed generation token": ("gsm8k", _generation_token),
    "changed prompt": ("mmlu", _prompt),
    "log-likelihood one spacing beyond ε": ("hellaswag", _ll_beyond_epsilon),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_each_mutation_of_the_fast_run_fails(runs: Callable[[str], Path], tmp_path: Path, mutation: str) -> None:
    copy = shutil.copytree(runs("fast"), tmp_path / "run")
    benchmark, change = MUTATIONS[mutation]
    path = copy / "samples" / f"{benchmark}.jsonl"
    rows = _read(path)
    index = (
        _far_from_a_tie(rows)
        if change is _flip
        else next(
            i for i, r in enumerate(rows) if change is not _generation_token or r["requests"][0].get("generation")
        )
    )
    change(rows[index])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = verify(copy, REFERENCE)
    failed = [v for v in report.verdicts if v.verdict is Verdict.DIFFERS]
    assert [v.benchmark for v in failed] == [benchmark]
    assert rows[index]["doc_id"] in {d.doc[1] for d in failed[0].differences if d.doc}


def test_a_bf16_spacing_is_its_8_significant_bits() -> None:
    # bfloat16 keeps 8 significant bits: between 2^e and 2^(e+1) numbers are 2^(e-7) apart; below 16 (the
    # magnitude of a trained model's logits, whose rounding reaches every log-probability) the spacing at 16.
    bf16, fp16 = PRECISIONS["bfloat16"], PRECISIONS["float16"]
    assert bf16.spacing(-100.0) == 2.0 ** (6 - 7)  # 64 <= 100 < 128
    assert bf16.spacing(-20.0) == 2.0 ** (4 - 7)
    assert bf16.spacing(-0.01) == bf16.spacing(-3.0) == 2.0 ** (4 - 7)
    assert fp16.spacing(-100.0) == 2.0 ** (6 - 10)
    assert Tolerance(precision=bf16).at(-100.0, -99.0) == 4 * 0.5
    # the coarser format wins; float32 (or an unknown dtype) keeps the fixed ε; names as v1 wrote them
    assert Tolerance.for_dtypes("float16", "bfloat16").precision == bf16
    assert Tolerance.for_dtypes("half", None).precision == fp16
    assert Tolerance.for_dtypes("float32", None) == Tolerance()
    assert math.isclose(Tolerance.for_dtypes("float32", "float16").at(-3.0), 16 * 2.0 ** (4 - 10))


@pytest.mark.slow
def test_mc2_values_far_outside_their_bounds_fail(runs: Callable[[str], Path], tmp_path: Path) -> None:
    # Every document with mc2 above 0.3 set to 0.001, and the stated score made their mean again: the
    # documents' lls did not move, so their mc2 cannot have.
    copy = shutil.copytree(runs("fast"), tmp_path / "run")
    path = copy / "samples" / "truthfulqa.jsonl"
    rows = _read(path)
    changed = [r["doc_id"] for r in rows if r["metrics"]["mc2"] > 0.3]
    assert changed
    for row in rows:
        if row["metrics"]["mc2"] > 0.3:
            row["metrics"]["mc2"] = 0.001
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    results = json.loads((copy / "results.json").read_text())
    results["benchmarks"]["truthfulqa"]["value"] = sum(r["metrics"]["mc2"] for r in rows) / len(rows)
    (copy / "results.json").write_text(json.dumps(results))
    report = verify(copy, REFERENCE)
    failed = {v.benchmark: v for v in report.verdicts if v.verdict is Verdict.DIFFERS}
    assert list(failed) == ["truthfulqa"]
    assert set(changed) <= {d.doc[1] for d in failed["truthfulqa"].differences if d.doc}
