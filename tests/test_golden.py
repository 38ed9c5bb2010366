"""evalsuite against the original v1 harness (tests/data/golden-v1, see its README): per document,
contexts byte-identical, log-likelihoods within 1e-4, generations and metrics identical, and the six
scores identical, for the tiny MoE and the tiny dense model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import GOLDEN, reference_run
from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.results import load_run, read_samples

LL_TOLERANCE = 1e-4


def _golden_docs(model: str, v1_task: str) -> dict[tuple[str | None, int], dict]:
    path = GOLDEN / "golden" / model / "samples" / f"{v1_task}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {(r.get("subject"), r["doc_id"]): r for r in rows}


@pytest.fixture(scope="module", params=["tiny-moe", "tiny-llama"])
def golden_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    # All documents, as the reference was made: CPU, float32, batch size 1.
    model = request.param
    return model, reference_run(tmp_path_factory, model, "--device", "cpu", "--dtype", "float32")


@pytest.mark.slow
@pytest.mark.parametrize("spec", BENCHMARKS, ids=lambda s: s.name)
def test_every_document_matches_the_v1_harness(golden_run: tuple[str, Path], spec) -> None:
    model, run_dir = golden_run
    golden = _golden_docs(model, spec.v1_task)
    ours = read_samples(run_dir, spec.name)
    assert sorted(d.key for d in ours) == sorted(golden)
    for doc in ours:
        ref = golden[doc.key]
        # v1 requested TruthfulQA's mc1 choices first, then the mc2 choices; we record mc1 apart.
        requests = [*doc.extra.get("mc1_requests", []), *(r.to_dict() for r in doc.requests)]
        assert len(requests) == len(ref["requests"]), doc.key
        for got, want in zip(requests, ref["requests"], strict=True):
            assert got["context"] == want["context"], doc.key
            if "loglikelihood" in want:
                assert got["continuation"] == want["continuation"], doc.key
                assert abs(got["loglikelihood"] - want["loglikelihood"]) <= LL_TOLERANCE, doc.key
            else:
                assert got["generation"] == want["generation"], doc.key
        assert dict(doc.metrics) == ref["metrics"], doc.key


@pytest.mark.slow
def test_the_six_scores_equal_the_v1_harness(golden_run: tuple[str, Path]) -> None:
    model, run_dir = golden_run
    reference = json.loads((GOLDEN / "golden" / model / "scores.json").read_text(encoding="utf-8"))
    run = load_run(run_dir)
    for spec in BENCHMARKS:
        want = reference[spec.v1_task]
        assert run.scores[spec.name].value == want[spec.metric], spec.name
        if "subjects" in want:
            assert dict(run.scores[spec.name].subscores) == want["subjects"]
    assert run.average == sum(reference[s.v1_task][s.metric] for s in BENCHMARKS) / 6


@pytest.mark.slow
def test_no_bos_token_is_added(golden_run: tuple[str, Path]) -> None:
    # The reference tokenizer adds <s> by default; v1 never did. The manifest's self-check holds the
    # sum of log-probs of a text without BOS, computed when the reference model was made.
    from evalsuite.engine import BackendOptions, load_backend

    model_name, _ = golden_run
    manifest = json.loads((GOLDEN / "models" / model_name / "anchor_manifest.json").read_text())
    lm = load_backend(BackendOptions(model=str(GOLDEN / "models" / model_name), device="cpu")).lm
    tokenizer = lm.tokenizer
    assert tokenizer(manifest["selfcheck_text"])["input_ids"][0] == tokenizer.bos_token_id  # adds BOS by default
    assert lm.tok_encode(manifest["selfcheck_text"]) == manifest["selfcheck_ids_no_bos"]
