"""The fast backend against the original v1 harness (tests/data/golden-v1), for every reference model,
under the tolerance policy (evalsuite.fidelity.tolerance): contexts identical, log-likelihoods within
1e-4, predictions identical except near-ties, GSM8k generations identical; and every shared prefix
forwarded about once (results.json's accounting)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import GOLDEN, GOLDEN_MODELS, reference_run
from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.fidelity.tolerance import compare_benchmark
from evalsuite.fidelity.verify import load_outputs
from evalsuite.results import load_run

BATCH_TOKENS = 4096
# Forwarded positions over the unique-prefix floor of the WHOLE benchmark: the fast backend shares
# prefixes within a call, so a prefix is forwarded again only where calls split a group sharing it.
FLOOR_FACTOR = 1.2
# tiny-moe-short's context is so short that many requests need v1's left truncation: those take the exact
# path, each input in full, so only the floor bounds its counts.
TRUNCATING = {"tiny-moe-short"}


@pytest.fixture(scope="module", params=GOLDEN_MODELS)
def fast_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    model = request.param
    run = reference_run(
        tmp_path_factory, model, "--device", "cpu", "--dtype", "float32", "--backend", "fast",
        "--max-batch-tokens", str(BATCH_TOKENS),
    )  # fmt: skip
    return model, run


@pytest.mark.slow
def test_fast_backend_matches_the_v1_harness(fast_run: tuple[str, Path]) -> None:
    model, run_dir = fast_run
    reference, ours = load_outputs(GOLDEN / "golden" / model), load_outputs(run_dir)
    for spec in BENCHMARKS:
        verdict = compare_benchmark(
            spec,
            reference.docs[spec.name],
            ours.docs[spec.name],
            stated_scores=(ours.scores[spec.name], reference.scores[spec.name]),
        )
        assert verdict.differences == (), (spec.name, verdict.differences[:5])
        assert verdict.n_docs == len(reference.docs[spec.name]), spec.name


@pytest.mark.slow
def test_every_shared_prefix_is_forwarded_about_once(fast_run: tuple[str, Path]) -> None:
    model, run_dir = fast_run
    engine = load_run(run_dir).extra["engine"]
    assert engine["backend"] == "fast"
    assert engine["max_batch_tokens"] == BATCH_TOKENS
    for spec in BENCHMARKS:
        cost = engine["benchmarks"][spec.name]
        assert cost["model_seconds"] > 0, spec.name
        if spec.name == "gsm8k":
            assert cost["unique_prefix_floor"] is None  # no log-likelihood requests
            continue
        assert cost["unique_prefix_floor"] <= cost["tokens_forwarded"], spec.name  # the floor bounds every schedule
        if model not in TRUNCATING:
            assert cost["tokens_forwarded"] <= FLOOR_FACTOR * cost["unique_prefix_floor"], spec.name


@pytest.mark.slow
def test_the_exact_path_forwards_more(fast_run: tuple[str, Path], golden_runs: Callable[[str], Path]) -> None:
    # The exact path's accounting on the same data: it forwards more than the fast backend (as much where
    # every request needs truncation and so takes the exact path).
    model, run_dir = fast_run
    fast = load_run(run_dir).extra["engine"]["benchmarks"]
    exact = load_run(golden_runs(model)).extra["engine"]
    assert exact["backend"] == "hf"
    for spec in BENCHMARKS:
        if spec.name == "gsm8k":
            continue
        more, less = exact["benchmarks"][spec.name]["tokens_forwarded"], fast[spec.name]["tokens_forwarded"]
        assert more >= less if model in TRUNCATING else more > less, spec.name
        # The same floor, whether the accounting tokenised the requests (exact path) or took the inputs
        # the fast backend tokenised (truncated as the exact path feeds them).
        assert fast[spec.name]["unique_prefix_floor"] == exact["benchmarks"][spec.name]["unique_prefix_floor"], (
            spec.name
        )
