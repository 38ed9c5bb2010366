"""A 7th benchmark is one table entry and one hook module: defined here alone, it runs end to end
(pipeline, results, card, compare) and leaves the leaderboard average and the card's Avg. to the six."""

from __future__ import annotations

import json
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import GOLDEN
from evalsuite.benchmarks.contract import Doc, Request, Scored, choice_requests, multiple_choice_metrics
from evalsuite.benchmarks.spec import BenchmarkSpec, CardEntry
from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.errors import ConfigError
from synth import write_split

TOY_ROWS = [
    {"question": f"Which number is the largest of {a}, {b} and {c}?", "choices": [str(a), str(b), str(c)], "label": i}
    for i, (a, b, c) in enumerate([(9, 2, 3), (1, 8, 4), (2, 5, 7)])
]


def _toy_hooks() -> Any:
    """The hook module of the toy benchmark: the five functions of the Task protocol."""
    toy = types.ModuleType("toy")

    def process_doc(row: Doc, config: str) -> Doc:
        return {"query": f"Question: {row['question']}\nAnswer:", "choices": row["choices"], "gold": row["label"]}

    def description(config: str) -> str:
        return ""

    def shot(doc: Doc) -> str:
        return doc["query"] + " " + doc["choices"][doc["gold"]]

    def requests(doc: Doc, prefix: str) -> list[Request]:
        return choice_requests(prefix, doc["query"], doc["choices"])

    def score(doc: Doc, responses: Sequence[float]) -> Scored:
        return Scored(multiple_choice_metrics(responses, doc["choices"], doc["gold"]), {"gold": doc["gold"]})

    for hook in (process_doc, description, shot, requests, score):
        setattr(toy, hook.__name__, hook)
    return toy


def toy_spec(**overrides: Any) -> BenchmarkSpec:
    fields: dict[str, Any] = dict(
        name="toy",
        v1_task="toy",
        title="Toy (0-shot)",
        dataset="example/toy",
        configs=("default",),
        eval_split="test",
        fewshot_split=None,
        num_fewshot=0,
        sampling="random",
        metric="acc",
        columns=("question", "choices", "label"),
        task=_toy_hooks(),
        card=CardEntry("toy", None, "test", "accuracy"),
        in_average=False,
    )
    return BenchmarkSpec(**(fields | overrides))


@pytest.fixture(scope="module")
def seven_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two runs of the tiny reference MoE over the six and the toy benchmark (3 docs each)."""
    from evalsuite.pipeline.run import RunOptions, run

    root = tmp_path_factory.mktemp("seven")
    data = root / "data"
    data.mkdir()
    for owner in (GOLDEN / "data").iterdir():  # the six benchmarks' reference data, plus the toy's
        (data / owner.name).symlink_to(owner, target_is_directory=True)
    write_split(data, "example/toy", "default", "test", TOY_ROWS)
    table = (*BENCHMARKS, toy_spec())
    model = str(GOLDEN / "models" / "tiny-moe")
    runs = []
    for name in ("a", "b"):
        opts = RunOptions(
            model=model, data_dir=str(data), output_dir=str(root / name), limit=3, progress=False, router_stats=False
        )
        runs.append(run(opts, table))
    return runs[0], runs[1]


@pytest.mark.slow
def test_a_seventh_benchmark_runs_end_to_end_and_stays_out_of_the_average(seven_runs: tuple[Path, Path]) -> None:
    from evalsuite.card.update import render_metrics_table
    from evalsuite.compare import compare
    from evalsuite.results import load_run, read_samples

    run_dir = seven_runs[0]
    run = load_run(run_dir)
    assert list(run.scores) == [*(spec.name for spec in BENCHMARKS), "toy"]

    # The toy's score is its documents' mean acc, and each acc is the argmax of that document's lls.
    docs = read_samples(run_dir, "toy")
    assert len(docs) == len(TOY_ROWS)
    for doc in docs:
        lls = [r.loglikelihood for r in doc.requests]
        assert doc.metrics["acc"] == (1.0 if lls.index(max(lls)) == doc.extra["gold"] else 0.0)
    assert run.scores["toy"].value == sum(d.metrics["acc"] for d in docs) / 3

    # Avg. is the mean of the six, whatever the toy scored.
    six = [run.scores[spec.name].value for spec in BENCHMARKS]
    expected = (six[0] + six[1] + six[2] + six[3] + six[4] + six[5]) / 6
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert results["average"] == pytest.approx(expected, abs=1e-12)
    assert run.missing == []
    metrics_md = (run_dir / "metrics.md").read_text(encoding="utf-8")
    assert f"|Avg.{' ' * 29}|{100 * expected:5.2f}|" in metrics_md
    assert metrics_md == render_metrics_table(run)
    assert "Toy" not in metrics_md and "toy" not in (run_dir / "model-index.yaml").read_text(encoding="utf-8")

    # compare reads both runs, pairs their documents, and its average column is the six's mean.
    cmp = compare(list(seven_runs), n_resamples=50)
    assert cmp.scores["average"].tolist() == pytest.approx([expected, expected], abs=1e-12)
    assert "toy" not in cmp.scores.columns
    assert not cmp.significance["reason"].notna().any()  # same documents, same prompts: every test ran


def test_a_table_entry_is_checked_when_it_is_made() -> None:
    with pytest.raises(ConfigError, match="lacks the hooks score"):
        toy_spec(
            task=types.SimpleNamespace(
                **{h: getattr(_toy_hooks(), h) for h in ("process_doc", "description", "shot", "requests")}
            )
        )
    with pytest.raises(ConfigError, match="needs a fewshot_split"):
        toy_spec(num_fewshot=5)
    with pytest.raises(ConfigError, match="lower-case"):
        toy_spec(name="Toy/1")
