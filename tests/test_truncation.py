"""A short-context model: the requests cut from the left are said once per benchmark, not once per request."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GOLDEN

MODEL = GOLDEN / "models" / "tiny-moe-short"  # 512 tokens: longer than many few-shot prompts
BENCHMARKS = ("hellaswag", "winogrande", "gsm8k")  # some cut, none cut, generations cut
LIMIT = 3


def _expected_cuts() -> dict[str, tuple[int, int]]:
    """Benchmark -> (requests cut, requests), from the requests' token lengths. The exact path feeds a
    log-likelihood request's last max_length tokens of context + continuation but one (its joint encoding
    is as long as the pair encoded whole), and keeps a generation's last max_length - 256 context tokens
    (v1: room for 256 generated tokens)."""
    from transformers import AutoConfig, AutoTokenizer

    from evalsuite.benchmarks.table import select
    from evalsuite.data.sources import source_for
    from evalsuite.pipeline.evaluate import prepare_all

    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    max_length = AutoConfig.from_pretrained(MODEL).max_position_embeddings
    prepared = prepare_all(select(BENCHMARKS), source_for(str(GOLDEN / "data")), LIMIT)
    expected = {}
    for name, docs in prepared.items():
        requests = [req for doc in docs for req in doc.requests]
        cut = 0
        for req in requests:
            if req.continuation is not None:
                cut += len(tokenizer.encode(req.context + req.continuation, add_special_tokens=False)) > max_length + 1
            else:
                cut += len(tokenizer.encode(req.context, add_special_tokens=False)) > max_length - 256
        expected[name] = (cut, len(requests))
    return expected


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["fast", "hf"])
def test_cut_requests_get_one_note_per_benchmark_and_no_line_each(tmp_path: Path, backend: str) -> None:
    run = subprocess.run(
        [
            sys.executable, "-m", "evalsuite.cli", "run", "--model", str(MODEL), "--data-dir", str(GOLDEN / "data"),
            "--benchmarks", ",".join(BENCHMARKS), "--limit", str(LIMIT), "--backend", backend, "--device", "cpu",
            "--threads", "1", "--no-progress", "--output-dir", str(tmp_path / "run"),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Combined length of context" not in run.stderr  # lm-eval's line per request
    assert "Token indices sequence length" not in run.stderr  # transformers' "indexing errors" that do not happen
    notes = dict(
        re.findall(r"^note: (\w+): (\d+ of \d+) requests did not fit the model's 512 tokens", run.stderr, re.M)
    )
    expected = _expected_cuts()
    assert 0 < expected["hellaswag"][0] < expected["hellaswag"][1]  # the count is not all or nothing
    assert expected["winogrande"][0] == 0 and expected["gsm8k"][0] > 0
    assert notes == {name: f"{cut} of {n}" for name, (cut, n) in expected.items() if cut}
    assert "note:" not in run.stdout
