"""The runner: v1 order per config, --limit, answering requests, per-config then macro aggregation.

The LM here is either a small stand-in that answers from the request text (to check routing and
aggregation with values worked out by hand) or, in the slow test, a reference tiny model.
"""

from __future__ import annotations

import dataclasses
import math
import random
import types
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.model import LM

from conftest import as_backend
from evalsuite.benchmarks.table import BY_NAME
from evalsuite.data.sources import LocalDirSource, load_rows
from evalsuite.pipeline.evaluate import aggregate, evaluate, prepare
from evalsuite.results import DocRecord
from synth import write_split

MMLU_TWO = dataclasses.replace(BY_NAME["mmlu"], configs=("anatomy", "virology"))


def mmlu_row(subject: str, question: str, answer: int) -> dict[str, Any]:
    return {"question": question, "subject": subject, "choices": ["w", "x", "y", "z"], "answer": answer}


def doc(subject: str | None, doc_id: int, **metrics: float) -> DocRecord:
    return DocRecord(doc_id=doc_id, requests=(), metrics=metrics, subject=subject)


class LetterBLM(LM):
    """Stands in for the model: prefers the continuation " B", and answers every GSM8k prompt with 1234."""

    def loglikelihood(self, instances: list[Any], disable_tqdm: bool = True) -> list[tuple[float, bool]]:
        return [(0.0 if inst.args[1] == " B" else -1.0, False) for inst in instances]

    def generate_until(self, instances: list[Any], disable_tqdm: bool = True) -> list[str]:
        return [" so the total is\n#### 1,234" for _ in instances]

    def loglikelihood_rolling(self, instances: list[Any], disable_tqdm: bool = True) -> list[float]:
        raise NotImplementedError


@pytest.fixture
def mmlu_dir(tmp_path: Path) -> Path:
    # anatomy: 1 test question (gold B); virology: 3 (gold B, A, C). Each subject has 5 dev rows.
    for subject, golds in (("anatomy", [1]), ("virology", [1, 0, 2])):
        dev = [mmlu_row(subject, f"{subject} dev question {i}?", i % 4) for i in range(5)]
        test = [mmlu_row(subject, f"{subject} test question {i}?", g) for i, g in enumerate(golds)]
        write_split(tmp_path, "cais/mmlu", subject, "dev", dev)
        write_split(tmp_path, "cais/mmlu", subject, "test", test)
    return tmp_path


@pytest.fixture(scope="module")
def golden_source(golden_dir: Path) -> LocalDirSource:
    return LocalDirSource(golden_dir / "data")


def test_mmlu_is_macro_mean():
    docs = [
        doc("anatomy", 0, acc=1.0),
        doc("virology", 0, acc=1.0),
        doc("virology", 1, acc=0.0),
        doc("virology", 2, acc=0.0),
    ]
    score = aggregate(MMLU_TWO, docs)
    assert score.value == pytest.approx((1 / 1 + 1 / 3) / 2)
    assert score.value != pytest.approx((1 + 1 + 0 + 0) / 4)  # the micro mean lm-eval 0.4 reports
    assert score.subscores == pytest.approx({"anatomy": 1 / 1, "virology": 1 / 3})
    assert score.n_docs == 4


def test_single_config_benchmark_is_the_plain_mean_with_the_sample_standard_error():
    docs = [doc(None, i, acc=a) for i, a in enumerate([1.0, 0.0, 0.0, 1.0])]
    score = aggregate(BY_NAME["winogrande"], docs)
    assert score.value == (1 + 0 + 0 + 1) / 4
    # sample variance (4 * 0.5**2) / (4 - 1), standard error sqrt(var / n)
    assert score.stderr == pytest.approx(math.sqrt((4 * 0.25) / 3 / 4))
    assert score.subscores == {}


def test_benchmark_score_is_the_table_metric_and_every_metric_mean_is_kept():
    docs = [doc(None, 0, acc=1.0, acc_norm=0.0), doc(None, 1, acc=1.0, acc_norm=1.0)]
    score = aggregate(BY_NAME["arc"], docs)
    assert (score.metric, score.value) == ("acc_norm", 0.5)
    assert score.metrics == {"acc": 1.0, "acc_norm": 0.5}


def test_each_mmlu_subject_is_shuffled_by_its_own_random42(mmlu_dir: Path):
    spec = dataclasses.replace(MMLU_TWO, configs=("virology", "anatomy"))  # table order, not file order
    prepared = prepare(spec, LocalDirSource(mmlu_dir))
    virology = [f"virology test question {i}?" for i in range(3)]
    random.Random(42).shuffle(virology)
    assert [(p.config, p.doc["query"].split("\n")[0]) for p in prepared] == [
        *[("virology", q) for q in virology],
        ("anatomy", "anatomy test question 0?"),
    ]


def test_limit_keeps_the_first_docs_after_the_shuffle_and_their_full_run_shots(golden_source: LocalDirSource):
    spec = BY_NAME["arc"]
    full = prepare(spec, golden_source)
    limited = prepare(spec, golden_source, limit=5)
    rows = load_rows(golden_source, spec, "ARC-Challenge", "test")
    shuffled = list(range(len(rows)))
    random.Random(42).shuffle(shuffled)
    assert [p.doc_id for p in limited] == shuffled[:5]
    assert [p.requests for p in limited] == [p.requests for p in full[:5]]


def test_limit_applies_per_mmlu_subject(golden_source: LocalDirSource):
    spec = dataclasses.replace(BY_NAME["mmlu"], configs=("anatomy", "virology", "world_religions"))
    full = prepare(spec, golden_source)
    limited = prepare(spec, golden_source, limit=2)
    for subject in spec.configs:
        full_subject = [p for p in full if p.config == subject]
        assert len(full_subject) > 2
        assert [p for p in limited if p.config == subject] == full_subject[:2]


def test_evaluate_routes_each_response_to_its_doc_and_macro_averages(mmlu_dir: Path):
    prepared = {"mmlu": prepare(MMLU_TWO, LocalDirSource(mmlu_dir))}
    outcome = evaluate(as_backend(LetterBLM()), [MMLU_TWO], prepared, progress=False)["mmlu"]
    # The stand-in always picks B: anatomy 1 of 1 right, virology 1 of 3 (only the gold-B question).
    assert outcome.score.value == pytest.approx((1 / 1 + 1 / 3) / 2)
    assert [(d.subject, d.doc_id, d.metrics["acc"]) for d in outcome.docs] == [
        ("anatomy", 0, 1.0),
        ("virology", 0, 1.0),
        ("virology", 1, 0.0),
        ("virology", 2, 0.0),
    ]  # stored in table order of subjects, then dataset order
    assert [r.loglikelihood for r in outcome.docs[0].requests] == [-1.0, 0.0, -1.0, -1.0]


def test_evaluate_scores_generations_with_the_extracted_answer(tmp_path: Path):
    train = [{"question": f"q{i}?", "answer": f"{i} apples.\n#### {i}"} for i in range(6)]
    test = [
        {"question": "How many hens?", "answer": "1,234 hens.\n#### 1,234"},
        {"question": "How cold is it?", "answer": "-5 degrees.\n#### -5"},
    ]
    write_split(tmp_path, "openai/gsm8k", "main", "train", train)
    write_split(tmp_path, "openai/gsm8k", "main", "test", test)
    spec = BY_NAME["gsm8k"]
    outcome = evaluate(
        as_backend(LetterBLM()), [spec], {"gsm8k": prepare(spec, LocalDirSource(tmp_path))}, progress=False
    )
    assert outcome["gsm8k"].score.value == (1 + 0) / 2
    assert [(d.doc_id, d.extra["extracted"], d.extra["gold"]) for d in outcome["gsm8k"].docs] == [
        (0, "1234", "1234"),
        (1, "1234", "-5"),
    ]
    assert outcome["gsm8k"].docs[0].requests[0].generation == " so the total is\n#### 1,234"


@pytest.mark.slow
def test_batch_size_4_gives_the_same_result_as_batch_size_1(golden_dir: Path, golden_source: LocalDirSource):
    # Padding changes float32 numerics by design: the same result means the tolerance policy's.
    from conftest import load_backend_of
    from evalsuite.fidelity.tolerance import compare_benchmark

    specs = [BY_NAME[n] for n in ("arc", "hellaswag", "truthfulqa", "winogrande")] + [
        dataclasses.replace(BY_NAME["mmlu"], configs=("anatomy", "high_school_us_history"))
    ]
    prepared = {spec.name: prepare(spec, golden_source, limit=2) for spec in specs}
    model = str(golden_dir / "models" / "tiny-moe")
    runs = {}
    for batch_size in (1, 4):
        backend = load_backend_of(model=model, backend="hf", device="cpu", batch_size=batch_size)
        assert backend.info.batch_size == batch_size
        runs[batch_size] = evaluate(backend, specs, prepared, progress=False)

    for spec in specs:
        one, four = runs[1][spec.name].docs, runs[4][spec.name].docs
        verdict = compare_benchmark(spec, one, four)
        assert verdict.differences == (), (spec.name, verdict.differences[:3])
        assert verdict.n_docs == len(one) > 0
        assert verdict.n_loglikelihoods == sum(len(d.requests) + len(d.extra.get("mc1_requests", [])) for d in one)


def test_a_row_the_task_refuses_is_a_data_error_saying_where(tmp_path: Path):
    from evalsuite.errors import DataError

    spec = dataclasses.replace(MMLU_TWO, configs=("anatomy",))
    write_split(tmp_path, "cais/mmlu", "anatomy", "dev", [mmlu_row("anatomy", f"q{i}?", 0) for i in range(5)])
    write_split(
        tmp_path, "cais/mmlu", "anatomy", "test", [mmlu_row("anatomy", "ok?", 1), mmlu_row("anatomy", "bad?", 7)]
    )
    with pytest.raises(DataError, match=r"^cais/mmlu/anatomy/test row 1: answer 7 with 4 choices"):
        prepare(spec, LocalDirSource(tmp_path))


def test_a_bug_in_a_task_hook_surfaces_as_itself(tmp_path: Path):
    # Not a data problem: the exception is not turned into "malformed row".
    hooks = types.SimpleNamespace()
    for hook in ("description", "shot", "requests", "score"):
        setattr(hooks, hook, getattr(MMLU_TWO.task, hook))
    hooks.process_doc = lambda row, config: row["no such key"]
    broken = dataclasses.replace(MMLU_TWO, configs=("anatomy",), task=hooks)
    write_split(tmp_path, "cais/mmlu", "anatomy", "dev", [mmlu_row("anatomy", f"q{i}?", 0) for i in range(5)])
    write_split(tmp_path, "cais/mmlu", "anatomy", "test", [mmlu_row("anatomy", "ok?", 1)])
    with pytest.raises(KeyError, match="no such key"):
        prepare(broken, LocalDirSource(tmp_path))
