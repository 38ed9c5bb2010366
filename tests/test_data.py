"""Offline data: the DIR/<owner>/<name>/<config>/<split>.parquet layout, its errors, and `data pull --from-dir`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_cli
from evalsuite.benchmarks.table import BY_NAME
from evalsuite.data.sources import ORIGINS_FILE, HubSource, LocalDirSource, load_rows
from evalsuite.errors import ConfigError, DataError
from evalsuite.results import read_samples
from synth import write_split

ARC = BY_NAME["arc"]
ARC_ROW = {
    "id": "Synthetic_0",
    "question": "Which planet is closest to the Sun?",
    "choices": {"text": ["Venus", "Mercury"], "label": ["A", "B"]},
    "answerKey": "B",
}


def parquet_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != ORIGINS_FILE}


def test_data_dir_that_does_not_exist_is_refused_with_the_pull_command(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such directory.*evalsuite data pull"):
        LocalDirSource(tmp_path / "nowhere")


def test_missing_split_names_the_expected_file(tmp_path: Path):
    write_split(tmp_path, "allenai/ai2_arc", "ARC-Challenge", "test", [ARC_ROW])
    expected = tmp_path / "allenai" / "ai2_arc" / "ARC-Challenge" / "train.parquet"
    with pytest.raises(DataError) as err:
        load_rows(LocalDirSource(tmp_path), ARC, "ARC-Challenge", "train")
    assert str(expected) in str(err.value)
    assert "evalsuite data pull" in str(err.value)


def test_wrong_columns_are_named(tmp_path: Path):
    renamed = {("answer" if k == "answerKey" else "prompt" if k == "question" else k): v for k, v in ARC_ROW.items()}
    write_split(tmp_path, "allenai/ai2_arc", "ARC-Challenge", "test", [renamed])
    with pytest.raises(DataError, match=r"missing column\(s\) question, answerKey"):
        load_rows(LocalDirSource(tmp_path), ARC, "ARC-Challenge", "test")


def test_empty_split_is_refused(tmp_path: Path):
    path = tmp_path / "allenai" / "ai2_arc" / "ARC-Challenge" / "test.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([ARC_ROW]).slice(0, 0), path)
    with pytest.raises(DataError, match="holds no rows"):
        load_rows(LocalDirSource(tmp_path), ARC, "ARC-Challenge", "test")


def test_a_file_that_is_not_parquet_is_a_data_error_naming_it(tmp_path: Path):
    path = tmp_path / "allenai" / "ai2_arc" / "ARC-Challenge" / "test.parquet"
    path.parent.mkdir(parents=True)
    path.write_text("question,answerKey\nWhich?,A\n")
    with pytest.raises(DataError, match="not a readable parquet file") as err:
        load_rows(LocalDirSource(tmp_path), ARC, "ARC-Challenge", "test")
    assert str(path) in str(err.value)


def test_rows_come_back_with_the_hub_columns(tmp_path: Path):
    write_split(tmp_path, "allenai/ai2_arc", "ARC-Challenge", "test", [ARC_ROW])
    assert load_rows(LocalDirSource(tmp_path), ARC, "ARC-Challenge", "test") == [ARC_ROW]


def test_hub_source_refuses_to_load_when_offline(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ConfigError, match="--data-dir"):
        load_rows(HubSource(), ARC, "ARC-Challenge", "test")


def test_data_pull_from_dir_writes_every_split_the_table_reads(golden_dir: Path, tmp_path: Path, capsys):
    src = golden_dir / "data"
    subjects = sorted(p.name for p in (src / "cais" / "mmlu").iterdir())
    assert len(subjects) == 57
    # eval and few-shot split of each benchmark (§10.1); TruthfulQA has no few-shot split.
    expected = {
        "allenai/ai2_arc/ARC-Challenge/test.parquet",
        "allenai/ai2_arc/ARC-Challenge/train.parquet",
        "Rowan/hellaswag/default/validation.parquet",
        "Rowan/hellaswag/default/train.parquet",
        *(f"cais/mmlu/{s}/{split}.parquet" for s in subjects for split in ("test", "dev")),
        "truthfulqa/truthful_qa/multiple_choice/validation.parquet",
        "allenai/winogrande/winogrande_xl/validation.parquet",
        "allenai/winogrande/winogrande_xl/train.parquet",
        "openai/gsm8k/main/test.parquet",
        "openai/gsm8k/main/train.parquet",
    }
    dest = tmp_path / "pulled"

    assert run_cli("data", "pull", str(dest), "--from-dir", str(src)) == 0

    assert parquet_files(dest) == expected  # and nothing else: no unread splits, no temp files
    assert f"wrote {len(expected)} files" in capsys.readouterr().out
    for rel in expected:
        assert pq.read_table(dest / rel).to_pylist() == pq.read_table(src / rel).to_pylist(), rel


def test_data_pull_of_a_subset_writes_only_its_splits(golden_dir: Path, tmp_path: Path):
    dest = tmp_path / "pulled"
    assert run_cli("data", "pull", str(dest), "--from-dir", str(golden_dir / "data"), "--benchmarks", "gsm8k") == 0
    assert parquet_files(dest) == {"openai/gsm8k/main/test.parquet", "openai/gsm8k/main/train.parquet"}
    origins = json.loads((dest / ORIGINS_FILE).read_text())  # each copy, from the file it was copied from
    source = golden_dir / "data" / "openai" / "gsm8k" / "main"
    assert origins == {
        f"openai/gsm8k/main/{split}": {
            "from": "sha256:" + hashlib.sha256((source / f"{split}.parquet").read_bytes()).hexdigest(),
            "sha256": hashlib.sha256((dest / "openai/gsm8k/main" / f"{split}.parquet").read_bytes()).hexdigest(),
        }
        for split in ("test", "train")
    }


@pytest.mark.slow
def test_a_run_on_the_pulled_copy_scores_like_the_source(golden_dir: Path, tmp_path: Path):
    src, dest, model = golden_dir / "data", tmp_path / "pulled", golden_dir / "models" / "tiny-llama"
    benchmarks = "arc,winogrande,truthfulqa"
    assert run_cli("data", "pull", str(dest), "--from-dir", str(src), "--benchmarks", benchmarks) == 0
    runs = {}
    for name, data_dir in (("source", src), ("pulled", dest)):
        runs[name] = tmp_path / f"run-{name}"
        args = ["--model", str(model), "--data-dir", str(data_dir), "--benchmarks", benchmarks, "--limit", "1"]
        assert run_cli("run", *args, "--output-dir", str(runs[name]), "--no-progress") == 0

    scores = {name: json.loads((run / "results.json").read_text())["benchmarks"] for name, run in runs.items()}
    assert scores["pulled"] == scores["source"]
    assert set(scores["source"]) == {"arc", "winogrande", "truthfulqa"}
    for benchmark in scores["source"]:
        assert read_samples(runs["pulled"], benchmark) == read_samples(runs["source"], benchmark)


@pytest.mark.slow
def test_a_run_records_the_hash_of_every_data_file_it_read(tiny_run: Path, golden_dir: Path) -> None:
    import hashlib

    from evalsuite.results import load_run

    files = load_run(tiny_run).provenance.data_files
    arc_test = golden_dir / "data" / "allenai" / "ai2_arc" / "ARC-Challenge" / "test.parquet"
    assert files["allenai/ai2_arc/ARC-Challenge/test"] == "sha256:" + hashlib.sha256(arc_test.read_bytes()).hexdigest()
    # every split the six benchmarks read, and nothing else: eval splits plus the few-shot ones
    expected = {f"{s.dataset}/{c}/{split}" for s in BY_NAME.values() for c in s.configs for split in s.splits()}
    assert set(files) == expected
