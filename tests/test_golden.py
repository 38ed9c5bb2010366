"""evalsuite against the original v1 harness (tests/data/golden-v1, see its README), for the three
reference models, under the tolerance policy (evalsuite.fidelity.tolerance): on the CPU that made the
reference the match is bit for bit; on others log-likelihoods move by a few float32 ULPs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import GOLDEN, GOLDEN_MODELS, run_cli
from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.fidelity.tolerance import compare_benchmark
from evalsuite.fidelity.verify import load_outputs
from evalsuite.results import load_run


@pytest.fixture(scope="module", params=GOLDEN_MODELS)
def golden_run(request: pytest.FixtureRequest, golden_runs: Callable[[str], Path]) -> tuple[str, Path]:
    return request.param, golden_runs(request.param)


@pytest.mark.slow
@pytest.mark.parametrize("spec", BENCHMARKS, ids=lambda s: s.name)
def test_every_document_matches_the_v1_harness(golden_run: tuple[str, Path], spec) -> None:
    model, run_dir = golden_run
    reference, ours = load_outputs(GOLDEN / "golden" / model), load_outputs(run_dir)
    verdict = compare_benchmark(
        spec,
        reference.docs[spec.name],
        ours.docs[spec.name],
        stated_scores=(ours.scores[spec.name], reference.scores[spec.name]),
    )
    assert verdict.differences == (), verdict.differences[:5]
    assert verdict.n_docs == len(reference.docs[spec.name])
    requests = sum(len(d.requests) + len(d.extra.get("mc1_requests", [])) for d in reference.docs[spec.name])
    generations = sum(1 for d in reference.docs[spec.name] for r in d.requests if r.loglikelihood is None)
    assert verdict.n_loglikelihoods == requests - generations


@pytest.mark.slow
def test_the_average_card_value_equals_the_v1_harness(golden_run: tuple[str, Path]) -> None:
    model, run_dir = golden_run
    reference = json.loads((GOLDEN / "golden" / model / "scores.json").read_text(encoding="utf-8"))
    want = sum(reference[s.v1_task][s.metric] for s in BENCHMARKS) / 6
    average = load_run(run_dir).average
    assert average is not None
    assert f"{100 * average:.2f}" == f"{100 * want:.2f}"


@pytest.mark.slow
def test_verify_accepts_the_run(golden_run: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    model, run_dir = golden_run
    assert run_cli("verify", str(run_dir), "--against", str(GOLDEN / "golden" / model)) == 0
    out = capsys.readouterr().out
    assert out.count("differs") == 0
    assert all(spec.name in out for spec in BENCHMARKS)


@pytest.mark.slow
def test_no_bos_token_is_added(golden_run: tuple[str, Path]) -> None:
    # The reference tokenizer adds <s> by default; v1 never did. The manifest's self-check holds the
    # sum of log-probs of a text without BOS, computed when the reference model was made.
    from conftest import load_backend_of

    model_name, _ = golden_run
    manifest = json.loads((GOLDEN / "models" / model_name / "anchor_manifest.json").read_text())
    lm = load_backend_of(model=str(GOLDEN / "models" / model_name), backend="hf", device="cpu").lm
    tokenizer = lm.tokenizer
    assert tokenizer(manifest["selfcheck_text"])["input_ids"][0] == tokenizer.bos_token_id  # adds BOS by default
    assert lm.tok_encode(manifest["selfcheck_text"]) == manifest["selfcheck_ids_no_bos"]


@pytest.mark.slow
def test_exact_path_accounting_lies_between_the_floor_and_no_sharing(golden_run: tuple[str, Path]) -> None:
    # lm-eval feeds each request's input, sharing only identical inputs within one call: at least the
    # distinct prefixes, at most every input in full (counted here from the recorded requests).
    from transformers import AutoTokenizer

    from evalsuite.results import read_samples

    model, run_dir = golden_run
    tokenizer = AutoTokenizer.from_pretrained(GOLDEN / "models" / model)
    engine = load_run(run_dir).extra["engine"]
    assert engine["backend"] == "hf"
    max_length = load_run(run_dir).model.max_length
    for spec in BENCHMARKS:
        cost = engine["benchmarks"][spec.name]
        assert cost["tokens_forwarded"] == cost["positions_forwarded"], spec.name  # batch size 1: no padding
        if spec.name == "gsm8k":
            continue
        no_sharing = 0
        for doc in read_samples(run_dir, spec.name):
            for req in [*doc.extra.get("mc1_requests", []), *(r.to_dict() for r in doc.requests)]:
                whole = tokenizer.encode(req["context"] + req["continuation"], add_special_tokens=False)
                no_sharing += min(len(whole), max_length + 1) - 1  # the input: all but the last token, truncated
        assert cost["unique_prefix_floor"] <= cost["tokens_forwarded"] <= no_sharing, spec.name
