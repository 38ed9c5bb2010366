"""The Hub's `.eval_results/` files (evalsuite.card.hub_eval_results): written in every full run directory and
beside an updated card, one per benchmark, read back by huggingface_hub; never for smoke-run values.

Expected values are read from results.json and rounded as the card rounds them (percent, 2 decimals); the
field names are those of the Hub's specification (docs/hub/eval-results.md, eval_results.yaml).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from evalsuite.benchmarks.table import BENCHMARKS

SEED = Path(__file__).resolve().parent / "data" / "seeds" / "BurningBruce-005.README.md"
# openai/gsm8k's eval.yaml names its task `gsm8k`; the others define none: the spec's `default`
TASK_IDS = {"gsm8k": "gsm8k"}
OTHER_EVALUATION = [
    {
        "dataset": {"id": "openai/gsm8k", "task_id": "gsm8k"},
        "value": 61.2,
        "notes": "8-shot CoT",
        "source": {"url": "https://example.org/paper", "name": "Paper"},
    }
]


def parse(path: Path) -> list:
    from huggingface_hub import parse_eval_result_entries

    return parse_eval_result_entries(yaml.safe_load(path.read_text()))


def check_files(directory: Path, run_dir: Path) -> None:
    """Six files whose single entry carries the run's card values and provenance."""
    data = json.loads((run_dir / "results.json").read_text())
    files = sorted(p.name for p in (directory / ".eval_results").iterdir() if p.suffix == ".yaml")
    assert files == sorted(f"{spec.name}.yaml" for spec in BENCHMARKS)
    for spec in BENCHMARKS:
        [entry] = parse(directory / ".eval_results" / f"{spec.name}.yaml")
        score = data["benchmarks"][spec.name]
        assert (entry.dataset_id, entry.task_id) == (spec.dataset, TASK_IDS.get(spec.name, "default"))
        assert entry.value == round(100 * score["value"], 2)
        assert entry.date == data["provenance"]["finished_at"]
        assert entry.source_name.startswith("Open LLM Leaderboard v1 protocol (evalsuite ")
        assert f"{spec.num_fewshot}-shot {spec.metric}" in entry.notes
        assert score["fingerprint"]["prompts"] in entry.notes  # what `verify` and `compare` check
        assert entry.dataset_revision is None  # read from a local data directory: no Hub commit to name


@pytest.mark.slow
def test_a_full_run_directory_holds_six_eval_results_of_its_card_values(golden_runs):
    run_dir = golden_runs("tiny-moe")
    check_files(run_dir, run_dir)
    [entry] = parse(run_dir / ".eval_results" / "arc.yaml")
    assert entry.source_url == "results.json"  # the run's own record, beside it


def test_a_smoke_run_directory_holds_none(tiny_run):
    assert not (tiny_run / ".eval_results").exists()


@pytest.mark.slow
def test_update_writes_them_beside_the_card_keeping_other_evaluations_and_huggingface_hub_reads_both(
    golden_runs, tmp_path, capsys
):
    from huggingface_hub import ModelCard

    run_dir = golden_runs("tiny-moe")
    repo = tmp_path / "my-merge"
    (repo / ".eval_results").mkdir(parents=True)
    card = repo / "README.md"
    shutil.copy(SEED, card)
    other = repo / ".eval_results" / "gsm8k.yaml"
    other.write_text(yaml.safe_dump(OTHER_EVALUATION, sort_keys=False))
    args = ["card", str(run_dir), "--update", str(card), "--model-name", "BurningBruce-005"]
    assert run_cli(*args) == 0
    assert "eval results written beside it" in capsys.readouterr().out

    data = ModelCard.load(card).data  # huggingface_hub reads the card ...
    assert len(data.eval_results) >= 6
    [theirs, ours] = yaml.safe_load(other.read_text())  # ... and the files; another evaluation's entry stays first
    assert theirs == OTHER_EVALUATION[0] and ours["dataset"]["id"] == "openai/gsm8k"
    other.write_text(yaml.safe_dump([ours], sort_keys=False))
    check_files(repo, run_dir)
    other.write_text(yaml.safe_dump([theirs, ours], sort_keys=False))

    before = {p.name: p.read_bytes() for p in (repo / ".eval_results").iterdir()}
    assert run_cli(*args) == 0  # the same update again changes nothing, and backs nothing up
    assert {p.name: p.read_bytes() for p in (repo / ".eval_results").iterdir()} == before


def test_update_with_a_smoke_run_writes_no_eval_results_and_keeps_the_existing(tiny_run, tmp_path):
    repo = tmp_path / "my-merge"
    (repo / ".eval_results").mkdir(parents=True)
    card = repo / "README.md"
    card.write_text("# my merge\n")
    other = repo / ".eval_results" / "gsm8k.yaml"
    other.write_text(yaml.safe_dump(OTHER_EVALUATION, sort_keys=False))
    assert run_cli("card", str(tiny_run), "--update", str(card), "--allow-smoke") == 0
    assert "smoke: true" in card.read_text()  # the card marks its smoke values ...
    assert [p.name for p in (repo / ".eval_results").iterdir()] == ["gsm8k.yaml"]  # ... and publishes none here
    assert yaml.safe_load(other.read_text()) == OTHER_EVALUATION


@pytest.mark.slow
def test_an_eval_results_file_that_is_not_a_list_stops_the_update_before_anything_is_written(
    golden_runs, tmp_path, capsys
):
    repo = tmp_path / "my-merge"
    (repo / ".eval_results").mkdir(parents=True)
    card = repo / "README.md"
    card.write_text("# my merge\n")
    (repo / ".eval_results" / "arc.yaml").write_text("dataset: allenai/ai2_arc\nvalue: 1\n")
    assert run_cli("card", str(golden_runs("tiny-moe")), "--update", str(card)) == 1
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: {repo}/.eval_results/arc.yaml: holds no list of results")
    assert card.read_text() == "# my merge\n"
    assert sorted(p.name for p in (repo / ".eval_results").iterdir()) == ["arc.yaml"]
