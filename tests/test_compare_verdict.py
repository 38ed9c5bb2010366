"""The verdict column of `evalsuite compare` (evalsuite.compare.verdict) on real runs of the reference tiny
models: a copy of a run, the fast backend against the hf one, another model, and a run that answers better."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import reference_run, run_cli
from evalsuite.benchmarks.table import BENCHMARK_NAMES, BY_NAME
from evalsuite.compare import Comparison, compare
from evalsuite.results import DocRecord, read_samples, samples_path

# The policy's log-likelihood tolerance in float32 and mc2's relative bound, e^(2ε) - 1 (README: Fidelity).
EPSILON = 1e-4
MC2_RELATIVE = 2.0002e-4
BETTER = "arc"  # the benchmark the doctored run answers every document of correctly


@pytest.fixture(scope="module")
def runs(golden_runs: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> dict:
    hf = golden_runs("tiny-moe")  # CPU float32, the hf backend, every reference document
    root = tmp_path_factory.mktemp("verdicts")
    copy = shutil.copytree(hf, root / "copy")  # a run repeated bit for bit (as a resumed run is)
    better = shutil.copytree(hf, root / "better")
    samples = samples_path(better, BETTER)
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    metric = BY_NAME[BETTER].metric
    samples.write_text("".join(json.dumps({**r, "metrics": {**r["metrics"], metric: 1.0}}) + "\n" for r in rows))
    return {
        "hf": hf,
        "fast": reference_run(
            tmp_path_factory, "tiny-moe", "--device", "cpu", "--dtype", "float32", "--backend", "fast"
        ),
        "copy": copy,
        "llama": golden_runs("tiny-llama"),
        "better": better,
        "limit": tiny_run,  # 3 documents per benchmark: no paired test
    }


@pytest.fixture(scope="module")
def cmp(runs: dict) -> Comparison:
    return compare(list(runs.values()), n_resamples=2000)


def verdicts(cmp: Comparison, runs: dict, name: str) -> dict[str, str]:
    label = cmp.labels[list(runs).index(name)]
    return dict(cmp.significance.xs(label, level="model")["verdict"])


def docs(run: Path, benchmark: str) -> list[DocRecord]:
    return sorted(read_samples(run, benchmark), key=lambda d: d.key)


def lls(doc: DocRecord) -> list[float | None]:
    """The document's log-likelihoods, TruthfulQA's mc1 choices (recorded apart) included."""
    return [r.loglikelihood for r in doc.requests] + [r["loglikelihood"] for r in doc.extra.get("mc1_requests", [])]


@pytest.mark.slow
def test_a_repeated_run_is_identical_on_every_benchmark(cmp, runs):
    assert verdicts(cmp, runs, "copy") == dict.fromkeys(BENCHMARK_NAMES, "identical")


@pytest.mark.slow
def test_backends_that_differ_by_rounding_get_one_label_on_accuracies_and_mc2(cmp, runs):
    expected = {}
    for name in BENCHMARK_NAMES:
        pairs = list(zip(docs(runs["hf"], name), docs(runs["fast"], name), strict=True))
        if all(a == b for a, b in pairs):
            expected[name] = "identical"
            continue
        # from first principles: every ll within ε, the same accuracies, mc2 within its relative bound
        metric = BY_NAME[name].metric
        for a, b in pairs:
            assert all(x == y or abs(x - y) <= EPSILON for x, y in zip(lls(a), lls(b), strict=True))
            assert abs(a.metrics[metric] - b.metrics[metric]) <= MC2_RELATIVE * abs(a.metrics[metric])
        expected[name] = "within rounding"
    # the rounding is there to be judged: on mc2 and on the accuracies alike
    assert expected["truthfulqa"] == "within rounding"
    assert sum(v == "within rounding" for v in expected.values()) >= 4
    assert verdicts(cmp, runs, "fast") == expected


@pytest.mark.slow
def test_another_model_is_never_identical_or_rounding_and_differs_where_its_interval_excludes_zero(cmp, runs):
    label = cmp.labels[list(runs).index("llama")]
    sig = cmp.significance.xs(label, level="model")
    for name in BENCHMARK_NAMES:
        excludes_zero = sig.loc[name, "ci_low"] > 0 or sig.loc[name, "ci_high"] < 0
        assert sig.loc[name, "verdict"] == ("differs" if excludes_zero else "within noise"), name


@pytest.mark.slow
def test_a_run_that_answers_better_differs_on_that_benchmark_only(cmp, runs):
    moe = docs(runs["hf"], BETTER)
    wrong = sum(d.metrics[BY_NAME[BETTER].metric] == 0 for d in moe)
    # every discordant document goes one way: a resample holds none of them with chance (1 - wrong/n)^n,
    # far below the 2.5% tail, so the 95% interval lies above 0
    assert wrong > 0 and (1 - wrong / len(moe)) ** len(moe) < 0.025 / 100
    assert verdicts(cmp, runs, "better") == {n: "differs" if n == BETTER else "identical" for n in BENCHMARK_NAMES}


@pytest.mark.slow
def test_every_printed_verdict_is_explained_in_the_legend(cmp, runs, capsys):
    assert run_cli("compare", *map(str, runs.values()), "--resamples", "200") == 0
    for report in (cmp.to_markdown(), capsys.readouterr().out):
        section = report.split("## Paired significance")[1].split("## Prompts")[0]
        explained = {line.split("'")[1] for line in section.splitlines() if line.startswith("- '")}
        rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")][2:]
        printed = {row[-1].strip().split(":")[0] for row in rows}
        assert {"identical", "within rounding", "differs", "within noise", "no paired test"} <= printed
        assert printed <= explained
