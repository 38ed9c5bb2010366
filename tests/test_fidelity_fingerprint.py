"""Prompt fingerprints in results.json, and what `evalsuite compare` says about them."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import GOLDEN
from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.compare import compare
from evalsuite.results import load_run


def _expected_prompts(v1_task: str, limit: int) -> str:
    """sha256 over the first `limit` documents in v1's evaluation order (eval_pos), one JSON line
    `[context, continuation]` per request, from the reference outputs."""
    path = GOLDEN / "golden" / "tiny-moe" / "samples" / f"{v1_task}.jsonl"
    rows = sorted(
        (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()), key=lambda r: r["eval_pos"]
    )
    digest = hashlib.sha256()
    for row in rows[:limit]:
        for r in row["requests"]:
            line = json.dumps([r["context"], r.get("continuation")], ensure_ascii=False, sort_keys=True)
            digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


@pytest.mark.slow
def test_the_fingerprint_is_the_hash_of_v1s_prompts_in_order(tiny_run: Path) -> None:
    run = load_run(tiny_run)
    for spec in (s for s in BENCHMARKS if s.name in ("arc", "hellaswag", "winogrande", "gsm8k")):
        fp = run.scores[spec.name].fingerprint
        assert fp is not None
        assert fp.prompts == _expected_prompts(spec.v1_task, limit=3), spec.name
    assert run.scores["gsm8k"].fingerprint.generation is not None  # type: ignore[union-attr]
    assert run.scores["arc"].fingerprint.generation is None  # type: ignore[union-attr]


@pytest.mark.slow
def test_compare_says_same_prompts_or_prompts_differ(tiny_run: Path, tiny_dense_run: Path, tmp_path: Path) -> None:
    # Two models on the same documents asked the same questions.
    table = compare([tiny_run, tiny_dense_run]).prompts_md()
    assert table.count("same prompts") == 6 and "prompts differ" not in table
    # One changed prompt of one benchmark: only that benchmark differs.
    copy = shutil.copytree(tiny_dense_run, tmp_path / "run")
    results = json.loads((copy / "results.json").read_text(encoding="utf-8"))
    results["benchmarks"]["arc"]["fingerprint"]["prompts"] = hashlib.sha256(b"other").hexdigest()
    (copy / "results.json").write_text(json.dumps(results), encoding="utf-8")
    row = compare([tiny_run, copy]).prompts_md().splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert cells == ["prompts differ"] + ["same prompts"] * 5
