"""evalsuite.compare and evalsuite.compare.stats on run directories whose per-document outcomes are known."""

from __future__ import annotations

import json
import math
import re
from math import comb
from pathlib import Path

import pytest

from evalsuite import card
from evalsuite.benchmarks.table import BENCHMARK_NAMES, BY_NAME
from evalsuite.cli.main import main
from evalsuite.compare import compare, find_runs, labels, write
from evalsuite.compare.stats import DEFAULT_SEED, paired_bootstrap
from evalsuite.errors import CompareError
from evalsuite.fsio import atomic_write_json, atomic_write_jsonl
from evalsuite.pipeline.evaluate import aggregate
from evalsuite.results import (
    DocRecord,
    ModelInfo,
    Provenance,
    RequestRecord,
    RunResult,
    load_run,
    samples_path,
)
from evalsuite.tasks.mmlu import SUBJECTS as MMLU_SUBJECTS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("scores.png", "radar.png", "deltas.png", "mmlu_subjects.png")

# Per-document values of each benchmark's leaderboard metric; MMLU by subject.
OUTCOMES_A = {
    "arc": [1, 1, 0],
    "hellaswag": [1, 0, 0, 0],
    "mmlu": {"abstract_algebra": [1, 0], "anatomy": [1, 1, 1, 0]},
    "truthfulqa": [0.5, 0.25],
    "winogrande": [1, 0],
    "gsm8k": [0, 0, 1],
}
OUTCOMES_B = {
    "arc": [1, 0, 0],
    "hellaswag": [1, 1, 1, 0],
    "mmlu": {"abstract_algebra": [1, 1], "anatomy": [0, 0, 1, 0]},
    "truthfulqa": [0.75, 0.75],
    "winogrande": [1, 1],
    "gsm8k": [0, 0, 0],
}


def write_run(root: Path, model: str, outcomes: dict, prompt: str = "Question", name: str | None = None) -> Path:
    """A run directory as `evalsuite run` writes it, with the given per-document outcomes."""
    out = root / (name or model.replace("/", "__"))
    scores = {}
    for benchmark, values in outcomes.items():
        spec = BY_NAME[benchmark]
        by_subject = values if isinstance(values, dict) else {None: values}
        docs = [
            DocRecord(
                doc_id=i,
                subject=subject,
                requests=(RequestRecord(f"{prompt} {i} of {benchmark} {subject}:", " A", -1.0),),
                metrics={spec.metric: float(v)},
            )
            for subject, vs in by_subject.items()
            for i, v in enumerate(vs)
        ]
        atomic_write_jsonl(samples_path(out, benchmark), [d.to_dict() for d in docs])
        scores[benchmark] = aggregate(spec, docs)
    run = RunResult(model=ModelInfo(id=model), scores=scores, provenance=Provenance(limit=None))
    atomic_write_json(out / "results.json", run.to_dict())
    return out


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    return write_run(tmp_path, "org/a", OUTCOMES_A), write_run(tmp_path, "org/b", OUTCOMES_B)


# --- tables -------------------------------------------------------------------------------------


def test_table_has_one_row_per_model_with_six_scores_and_average(two_runs):
    cmp = compare(two_runs, n_resamples=100)
    a = {
        "arc": (1 + 1 + 0) / 3,
        "hellaswag": (1 + 0 + 0 + 0) / 4,
        "mmlu": ((1 + 0) / 2 + (1 + 1 + 1 + 0) / 4) / 2,  # macro mean over subjects
        "truthfulqa": (0.5 + 0.25) / 2,
        "winogrande": (1 + 0) / 2,
        "gsm8k": (0 + 0 + 1) / 3,
    }
    assert list(cmp.scores.index) == ["org/a", "org/b"]
    assert list(cmp.scores.columns) == [*BENCHMARK_NAMES, "average"]
    for name, expected in a.items():
        assert cmp.scores.loc["org/a", name] == pytest.approx(expected)
    assert cmp.scores.loc["org/a", "average"] == pytest.approx(sum(a.values()) / 6)


def test_deltas_are_against_the_chosen_baseline(two_runs):
    cmp = compare(two_runs, baseline="org/b", n_resamples=100)
    assert cmp.baseline == "org/b"
    assert list(cmp.deltas.index) == ["org/a"]  # the baseline has no row of its own
    assert cmp.deltas.loc["org/a", "arc"] == pytest.approx((1 + 1 + 0) / 3 - (1 + 0 + 0) / 3)
    assert cmp.deltas.loc["org/a", "mmlu"] == pytest.approx(
        ((1 + 0) / 2 + 3 / 4) / 2 - ((1 + 1) / 2 + (0 + 0 + 1 + 0) / 4) / 2
    )
    assert cmp.deltas.loc["org/a", "truthfulqa"] == pytest.approx((0.5 + 0.25) / 2 - 0.75)


def test_baseline_can_be_named_by_its_path(two_runs):
    assert compare(two_runs, baseline=str(two_runs[1]), n_resamples=100).baseline == "org/b"


def test_unknown_baseline_is_refused(two_runs):
    with pytest.raises(CompareError, match=r"--baseline 'org/c': matches none .* org/a, org/b"):
        compare(two_runs, baseline="org/c")


def test_table_shows_percentages_with_two_decimals(two_runs):
    md = compare(two_runs, n_resamples=100).scores_md()
    # arc of org/a: 2 of 3 -> 66.67; truthfulqa: (0.5 + 0.25) / 2 -> 37.50
    assert re.search(r"^\| org/a \| 66\.67 \| 25\.00 \| 62\.50 \| 37\.50 \| 50\.00 \| 33\.33 \| 45\.83 \|$", md, re.M)


def test_mmlu_drill_down_has_every_subject_in_table_order(two_runs):
    subjects = compare(two_runs, n_resamples=100).subjects
    assert list(subjects.columns) == list(MMLU_SUBJECTS)
    assert subjects.loc["org/b", "abstract_algebra"] == pytest.approx((1 + 1) / 2)
    assert subjects.loc["org/b", "anatomy"] == pytest.approx((0 + 0 + 1 + 0) / 4)
    assert subjects.loc["org/b", "astronomy"] != subjects.loc["org/b", "astronomy"]  # NaN: not evaluated


def test_runs_of_the_same_model_are_labelled_by_their_directories(tmp_path):
    one = write_run(tmp_path, "org/a", OUTCOMES_A, name="20250101T000000Z")
    two = write_run(tmp_path, "org/a", OUTCOMES_A, name="20250102T000000Z")
    card_like = write_run(tmp_path / "x", "org/a", OUTCOMES_A, name="20250102T000000Z")
    assert labels([load_run(one), load_run(two)]) == ["org/a [20250101T000000Z]", "org/a [20250102T000000Z]"]
    assert labels([load_run(two), load_run(card_like)]) == [
        "org/a [20250102T000000Z] #1",
        "org/a [20250102T000000Z] #2",
    ]


def test_local_models_are_labelled_by_their_directory_name(tmp_path):
    run = load_run(write_run(tmp_path, "/models/merges/slerp-0.5", OUTCOMES_A, name="r"))
    assert labels([run]) == ["slerp-0.5"]


# --- paired significance ------------------------------------------------------------------------


def test_mcnemar_p_value_matches_the_exact_binomial_test(tmp_path):
    # 10 arc docs: 3 both right, 1 only a, 5 only b, 1 both wrong.
    a = write_run(tmp_path, "org/a", {"arc": [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]})
    b = write_run(tmp_path, "org/b", {"arc": [1, 1, 1, 0, 1, 1, 1, 1, 1, 0]})
    row = compare([a, b], n_resamples=100).significance.loc[("org/b", "arc")]
    # Exact McNemar: the 1 + 5 discordant docs split as Binomial(6, 1/2); two-sided p = 2 P(X <= 1).
    expected = 2 * (comb(6, 0) + comb(6, 1)) / 2**6
    assert row["mcnemar_p"] == pytest.approx(expected)
    assert (row["baseline_only"], row["model_only"]) == (1, 5)
    assert row["delta"] == pytest.approx((8 - 4) / 10)


def test_continuous_mc2_gets_an_interval_but_no_mcnemar(two_runs):
    row = compare(two_runs, n_resamples=100).significance.loc[("org/b", "truthfulqa")]
    assert row["reason"] is None
    assert row["mcnemar_p"] != row["mcnemar_p"]  # NaN
    assert row["delta"] == pytest.approx(0.75 - (0.5 + 0.25) / 2)


def test_interval_is_a_point_when_every_document_moves_the_same_way(tmp_path):
    a = write_run(tmp_path, "org/a", {"winogrande": [0] * 20})
    b = write_run(tmp_path, "org/b", {"winogrande": [1] * 20})
    row = compare([a, b]).significance.loc[("org/b", "winogrande")]
    assert (row["ci_low"], row["delta"], row["ci_high"]) == (1.0, 1.0, 1.0)
    assert row["significant"]


def test_interval_follows_the_binomial_distribution_of_resampled_documents():
    from scipy.stats import binom

    # b gets 200 of 400 docs right, a none: a resample's difference is (number of b-right docs) / 400,
    # and that number is Binomial(400, 1/2). The percentile interval is its 2.5% and 97.5% quantiles.
    n, resamples = 400, 20_000
    a, b = [0] * n, [1] * (n // 2) + [0] * (n // 2)
    delta, low, high = paired_bootstrap(a, b, n_resamples=resamples, seed=3)
    assert delta == pytest.approx(1 / 2)
    # A Monte Carlo quantile sits where the binomial CDF crosses q, up to the empirical CDF's noise.
    noise = 4 * math.sqrt(0.025 * 0.975 / resamples)
    for value, q in ((low, 0.025), (high, 0.975)):
        k_below, k_above = math.floor(value * n + 1e-9), math.ceil(value * n - 1e-9)
        assert binom.cdf(k_below - 1, n, 0.5) <= q + noise
        assert binom.cdf(k_above, n, 0.5) >= q - noise
    assert 0.44 < low < 0.46 and 0.54 < high < 0.56  # about 1/2 -+ 1.96 * sqrt(1/4 / 400)


def test_mmlu_bootstrap_resamples_within_subjects(tmp_path):
    # b beats a on every abstract_algebra doc and ties on anatomy. Resampling within subjects keeps
    # each subject's mean difference fixed (1 and 0), so every resample's macro mean is (1 + 0) / 2;
    # pooled resampling would vary the mix of the two subjects and widen the interval.
    a = write_run(tmp_path, "org/a", {"mmlu": {"abstract_algebra": [0] * 4, "anatomy": [1] * 6}})
    b = write_run(tmp_path, "org/b", {"mmlu": {"abstract_algebra": [1] * 4, "anatomy": [1] * 6}})
    row = compare([a, b]).significance.loc[("org/b", "mmlu")]
    assert (row["ci_low"], row["delta"], row["ci_high"]) == (0.5, 0.5, 0.5)


def test_bootstrap_without_strata_agrees_with_scipy():
    import numpy as np
    from scipy.stats import bootstrap

    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=60), rng.uniform(size=60) ** 0.8
    delta, low, high = paired_bootstrap(a, b, n_resamples=20_000, seed=1)
    ref = bootstrap(
        (a, b),
        lambda x, y, axis: y.mean(axis=axis) - x.mean(axis=axis),
        paired=True,
        method="percentile",
        n_resamples=20_000,
        rng=np.random.default_rng(2),
    ).confidence_interval
    assert delta == pytest.approx(b.mean() - a.mean())
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=0.01)


def test_bootstrap_is_reproducible_from_its_seed():
    a, b = [0, 1, 0, 1, 1, 0, 0, 1], [1, 1, 0, 0, 1, 1, 1, 1]
    assert paired_bootstrap(a, b, seed=5) == paired_bootstrap(a, b, seed=5)
    assert paired_bootstrap(a, b, seed=5) != paired_bootstrap(a, b, seed=6)


def test_seed_is_recorded_in_the_report(two_runs):
    assert f"seed {DEFAULT_SEED};" in compare(two_runs, n_resamples=100).to_markdown()
    assert "seed 7;" in compare(two_runs, seed=7, n_resamples=100).to_markdown()


def test_runs_on_different_documents_get_no_paired_test(tmp_path):
    a = write_run(tmp_path, "org/a", {"arc": [1, 0] * 30, "winogrande": [1, 0]})  # e.g. --limit 60
    b = write_run(tmp_path, "org/b", {"arc": [1, 0, 0], "winogrande": [1, 1]})  # --limit 3
    sig = compare([a, b]).significance
    assert sig.loc[("org/b", "arc"), "reason"] == "arc: runs evaluated different documents (60 vs 3 docs, 3 in common)"
    for column in ("delta", "ci_low", "ci_high", "mcnemar_p"):
        assert sig.loc[("org/b", "arc"), column] != sig.loc[("org/b", "arc"), column]  # NaN
    assert sig.loc[("org/b", "winogrande"), "reason"] is None
    assert sig.loc[("org/b", "gsm8k"), "reason"] == "gsm8k: not evaluated by org/a"
    assert "no paired test: arc: runs evaluated different documents" in compare([a, b]).significance_md()


def test_same_document_ids_with_other_prompts_get_no_paired_test(tmp_path):
    a = write_run(tmp_path, "org/a", {"arc": [1, 0, 1]})
    b = write_run(tmp_path, "org/b", {"arc": [1, 0, 1]}, prompt="Other data")
    reason = compare([a, b]).significance.loc[("org/b", "arc"), "reason"]
    assert reason == "arc: same document ids but different prompts in 3 of 3 docs (other data or few-shot examples)"


def test_card_rows_hold_the_published_scores(tmp_path, two_runs):
    published = load_run(two_runs[0])
    readme = tmp_path / "README.md"
    readme.write_text(f"---\n{card.render_model_index(published)}---\n\n# a\n", encoding="utf-8")
    cmp = compare([two_runs[1], readme], n_resamples=100)
    assert cmp.labels[1].endswith(" (card)")
    row = cmp.scores.loc[cmp.labels[1]]
    assert row["arc"] == pytest.approx(66.67 / 100)  # the card rounds 2 of 3 to 66.67%
    assert row["hellaswag"] == pytest.approx(25.0 / 100)
    reason = cmp.significance.loc[(cmp.labels[1], "arc"), "reason"]
    assert reason == f"arc: {cmp.labels[1]} is a published card, it has no per-document samples"


# --- command line and written comparisons -------------------------------------------------------


def test_cli_prints_the_table_and_writes_nothing_without_write(two_runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", *map(str, two_runs), "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "| org/a | 66.67 |" in out
    assert "| org/b | -33.33 |" in out  # arc delta: 1/3 - 2/3
    assert not (tmp_path / "results" / "compare").exists()


def test_write_makes_a_new_timestamped_directory_each_time(two_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["compare", *map(str, two_runs), "--write", "--resamples", "100"]) == 0
    made = sorted((tmp_path / "results" / "compare").iterdir())
    assert len(made) == 2  # the second never overwrites the first, even in the same second
    assert re.fullmatch(r"\d{8}T\d{6}Z", made[0].name)
    for out in made:
        report = (out / "compare.md").read_text(encoding="utf-8")
        for png in FIGURES:
            assert (out / png).read_bytes().startswith(PNG_MAGIC)
            assert f"]({png})" in report


def test_existing_output_dir_is_never_overwritten(two_runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "compare.md").write_text("earlier\n", encoding="utf-8")
    assert main(["compare", *map(str, two_runs), "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists" in err and err.count("\n") == 1
    assert (out / "compare.md").read_text(encoding="utf-8") == "earlier\n"


def test_missing_run_is_a_one_line_error(two_runs, tmp_path, capsys):
    assert main(["compare", str(two_runs[0]), str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'nope'}: no such run directory or model card") and err.count("\n") == 1


def test_a_single_run_gets_its_table_and_figures_but_no_paired_test(two_runs, tmp_path):
    cmp = compare(two_runs[:1])
    assert cmp.deltas.empty and cmp.significance.empty
    out = write(cmp, tmp_path / "one")
    assert sorted(p.name for p in out.glob("*.png")) == ["mmlu_subjects.png", "radar.png", "scores.png"]


def test_negative_seed_is_refused_by_the_cli(two_runs, capsys):
    assert main(["compare", *map(str, two_runs), "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not a seed" in err and err.count("\n") == 1


def test_find_runs_skips_earlier_comparisons(two_runs, tmp_path):
    write(compare(two_runs, n_resamples=100), results_root=tmp_path)
    assert find_runs(tmp_path) == sorted(two_runs)


# --- real runs ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_runs_on_the_same_documents_are_paired(tiny_run, tiny_dense_run, tmp_path):
    cmp = compare([tiny_run, tiny_dense_run], n_resamples=500)
    sig = cmp.significance.xs(cmp.labels[1], level="model")
    assert sig["reason"].isna().all()
    n_mmlu_subjects = len(MMLU_SUBJECTS)
    assert dict(sig["n_docs"]) == {n: 3 * n_mmlu_subjects if n == "mmlu" else 3 for n in BENCHMARK_NAMES}
    for name in BENCHMARK_NAMES:
        published = [
            json.loads((r / "results.json").read_text())["benchmarks"][name]["value"]
            for r in (tiny_run, tiny_dense_run)
        ]
        # the difference recomputed from the samples is the difference of the published scores
        assert sig.loc[name, "delta"] == pytest.approx(published[1] - published[0])
        assert cmp.deltas.loc[cmp.labels[1], name] == pytest.approx(published[1] - published[0])
        assert sig.loc[name, "ci_low"] <= sig.loc[name, "delta"] <= sig.loc[name, "ci_high"]
    written = write(cmp, tmp_path / "cmp")
    assert all((written / png).read_bytes().startswith(PNG_MAGIC) for png in FIGURES)


def test_a_difference_of_float_rounding_is_not_called_a_difference(tmp_path):
    # mc2 of the same model from two backends: every document moves by ~1e-7, all the same way.
    base = [0.18313645, 0.4210, 0.77, 0.05, 0.6]
    a = write_run(tmp_path, "org/a", {"truthfulqa": base})
    b = write_run(tmp_path, "org/b", {"truthfulqa": [v - 1.3e-7 for v in base]})
    c = write_run(tmp_path, "org/c", {"truthfulqa": [v - 1e-3 for v in base]})  # a real, if small, change
    result = compare([a, b, c], n_resamples=200)
    same, moved = result.significance.loc[("org/b", "truthfulqa")], result.significance.loc[("org/c", "truthfulqa")]
    assert same["ci_high"] < 0 and same["within_rounding"] and not same["significant"]
    assert moved["ci_high"] < 0 and not moved["within_rounding"] and moved["significant"]
    assert (same["verdict"], moved["verdict"]) == ("within rounding", "differs")
    report = result.significance_md()
    assert "within rounding" in report and "differs" in report


def test_within_rounding_needs_the_same_card_value(tmp_path):
    same = write_run(tmp_path, "org/a", {"winogrande": [1, 0, 1, 1], "truthfulqa": [0.5] * 8})
    equal = write_run(tmp_path, "org/b", {"winogrande": [1, 0, 1, 1], "truthfulqa": [0.5 * (1 + 1.9e-4)] * 8})
    result = compare([same, equal], n_resamples=100).significance
    # equal documents (values and log-likelihoods) are identical; every mc2 moved within the relative
    # bound, but the card value moved from 50.00 to 50.01: that is a difference evalsuite verify reports too
    assert result.loc[("org/b", "winogrande"), "verdict"] == "identical"
    assert result.loc[("org/b", "truthfulqa"), "within_rounding"] is False
    assert result.loc[("org/b", "truthfulqa"), "significant"]
    assert result.loc[("org/b", "truthfulqa"), "verdict"] == "differs"


def test_a_nan_document_metric_gets_no_verdict_but_a_reason(tmp_path):
    a = write_run(tmp_path, "org/a", {"truthfulqa": [0.2, 0.4, 0.6, 0.8]})
    b = write_run(tmp_path, "org/b", {"truthfulqa": [0.2, 0.4, 0.6, 0.8]})
    samples = b / "samples" / "truthfulqa.jsonl"  # a NaN model's mc2, as another tool's JSON writes it
    rows = samples.read_text().splitlines()
    rows[1] = rows[1].replace('"mc2": 0.4', '"mc2": NaN')
    samples.write_text("\n".join(rows) + "\n")
    result = compare([a, b], n_resamples=100)
    row = result.significance.loc[("org/b", "truthfulqa")]
    assert "non-finite mc2 on 1 documents (doc 1 first)" in row["reason"] and not row["significant"]
    assert row["verdict"] == "no paired test"
    assert "non-finite mc2" in result.significance_md()
