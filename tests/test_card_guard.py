"""What may go into a card: smoke and partial runs only when asked (and then marked), runs of one model
only, never a read-only card."""

from __future__ import annotations

import json
import shutil

import pytest
from test_card import NEW, SEED, front_matter, make_run, our_results, write_run

from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.cli.main import main

pytestmark = pytest.mark.filterwarnings("ignore::evalsuite.card.read.CardWarning")
LEADERBOARD = "Open LLM Leaderboard"


@pytest.fixture
def seed_card(tmp_path):
    path = tmp_path / "card" / "README.md"
    path.parent.mkdir()
    shutil.copy(SEED, path)
    return path


# --- smoke and partial runs ---------------------------------------------------------------------


def test_a_smoke_run_is_refused_for_update_and_the_card_stays(tmp_path, seed_card, capsys):
    run_dir = write_run(tmp_path / "run", make_run(NEW, smoke=True))
    before = seed_card.read_bytes()
    assert main(["card", str(run_dir), "--update", str(seed_card)]) == 1
    err = capsys.readouterr().err
    assert "error: " in err and "refusing to put smoke-run scores (--limit 3" in err and "--allow-smoke" in err
    assert seed_card.read_bytes() == before and not seed_card.with_name("README.md.bak").exists()


def test_a_smoke_run_is_refused_for_push_before_the_hub_is_asked(tmp_path, seed_card, capsys):
    run_dir = write_run(tmp_path / "run", make_run(NEW, smoke=True))
    before = seed_card.read_bytes()
    # (offline: a Hub call would fail with "the Hub refused or could not be reached" instead)
    assert main(["card", str(run_dir), "--update", str(seed_card), "--push", "org/model"]) == 1
    assert "refusing to put smoke-run scores" in capsys.readouterr().err
    assert seed_card.read_bytes() == before
    assert main(["card", str(run_dir), "--push", "org/model"]) == 1  # the Hub's card: not even fetched
    assert "error: README.md of org/model: refusing to put smoke-run scores" in capsys.readouterr().err


def test_an_allowed_smoke_run_is_marked_and_from_card_reports_it(tmp_path, seed_card, capsys):
    run_dir = write_run(tmp_path / "run", make_run(NEW, model="ConvexAI/BurningBruce-005", smoke=True))
    assert main(["card", str(run_dir), "--update", str(seed_card), "--allow-smoke"]) == 0
    capsys.readouterr()
    for result in our_results(front_matter(seed_card.read_text())["model-index"]):
        assert result["metrics"][0]["args"] == {"smoke": True, "limit": 3}
        assert result["source"]["name"] == "evalsuite 0.1.0 smoke run run (--limit 3)"

    assert main(["card", "--from-card", str(seed_card), "--json"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert (data["provenance"]["smoke"], data["provenance"]["limit"]) == (True, 3)
    assert data["smoke_benchmarks"] == [spec.name for spec in BENCHMARKS]
    assert "marked as smoke-run values" in out.err
    assert main(["card", "--from-card", str(seed_card)]) == 0
    assert "Smoke run (--limit 3)" in capsys.readouterr().out


def test_a_full_run_merged_with_a_limited_one_is_said_to_hold_a_smoke_run_not_the_demo(tmp_path, seed_card, capsys):
    """The newest run is the full one (no --limit): the card's note and the refusal still say --limit."""
    partial_full = {name: value for name, value in NEW.items() if name != "gsm8k"}
    full = write_run(
        tmp_path / "full",
        make_run(partial_full, model="ConvexAI/BurningBruce-005", finished="2025-02-01T00:00:00+00:00"),
    )
    limited = write_run(tmp_path / "limited", make_run({"gsm8k": 0.3}, model="ConvexAI/BurningBruce-005", smoke=True))
    assert main(["card", str(full), str(limited), "--update", str(seed_card)]) == 1
    assert "refusing to put smoke-run scores (--limit 3: a subset of the documents)" in capsys.readouterr().err
    assert main(["card", str(full), str(limited), "--update", str(seed_card), "--allow-smoke"]) == 0
    text = seed_card.read_text()
    assert "Smoke run (--limit 3)" in text and "Demo run" not in text
    capsys.readouterr()


def test_a_partial_run_is_refused_where_the_card_publishes_values(tmp_path, seed_card, capsys):
    partial = {name: value for name, value in NEW.items() if name != "gsm8k"}
    run_dir = write_run(tmp_path / "run", make_run(partial, model="ConvexAI/BurningBruce-005"))
    before = seed_card.read_bytes()
    assert main(["card", str(run_dir), "--update", str(seed_card)]) == 1
    assert "the run has no GSM8k (5-shot) while the card publishes values for 6 benchmarks" in capsys.readouterr().err
    assert seed_card.read_bytes() == before

    assert main(["card", str(run_dir), "--update", str(seed_card), "--allow-smoke"]) == 0
    results = {r["dataset"]["name"]: r for r in our_results(front_matter(seed_card.read_text())["model-index"])}
    # the value it does not replace keeps the leaderboard's provenance; the others say evalsuite
    assert results["GSM8k (5-shot)"]["source"]["name"] == LEADERBOARD
    assert results["GSM8k (5-shot)"]["metrics"][0]["value"] == 71.49
    assert results["MMLU (5-Shot)"]["source"]["name"].startswith("evalsuite 0.1.0 run ")
    assert "args" not in results["MMLU (5-Shot)"]["metrics"][0]  # full documents: no smoke mark


def test_a_partial_run_is_fine_for_a_card_without_published_values(tmp_path, capsys):
    path = tmp_path / "README.md"
    path.write_text("---\nlicense: mit\n---\n# m\n")
    run_dir = write_run(tmp_path / "run", make_run({"arc": 0.5}))
    assert main(["card", str(run_dir), "--update", str(path)]) == 0


# --- one model per card -------------------------------------------------------------------------


def test_two_local_directories_of_the_same_name_with_other_weights_are_refused(tmp_path, capsys):
    a = make_run({"arc": 0.5}, model="~/a/tiny-llama", commit=None, weights={"model.safetensors": "aa" * 32})
    b = make_run({"gsm8k": 0.5}, model="~/b/tiny-llama", commit=None, weights={"model.safetensors": "bb" * 32})
    assert main(["card", str(write_run(tmp_path / "a", a)), str(write_run(tmp_path / "b", b)), "-o", "-"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: the runs are of different models: " in err
    assert f"~/a/tiny-llama (weights model.safetensors {'aa' * 6}) in {tmp_path / 'a'}" in err
    assert f"~/b/tiny-llama (weights model.safetensors {'bb' * 6}) in {tmp_path / 'b'}" in err


def test_the_same_directory_with_changed_weights_is_refused(tmp_path, capsys):
    a = make_run({"arc": 0.5}, model="./tiny", commit=None, weights={"model.safetensors": "aa" * 32})
    b = make_run({"gsm8k": 0.5}, model="./tiny", commit=None, weights={"model.safetensors": "cc" * 32})
    assert main(["card", str(write_run(tmp_path / "a", a)), str(write_run(tmp_path / "b", b)), "-o", "-"]) == 1
    assert "the runs are of different models" in capsys.readouterr().err


def test_hub_models_of_the_same_name_in_other_orgs_or_commits_are_refused(tmp_path, capsys):
    a = write_run(tmp_path / "a", make_run({"arc": 0.5}, model="orgA/merge"))
    b = write_run(tmp_path / "b", make_run({"gsm8k": 0.5}, model="orgB/merge"))
    assert main(["card", str(a), str(b), "-o", "-"]) == 1
    err = capsys.readouterr().err
    assert "orgA/merge at commit 0123456789ab" in err and "orgB/merge at commit 0123456789ab" in err
    c = write_run(tmp_path / "c", make_run({"gsm8k": 0.5}, model="orgA/merge", commit="f" * 40))
    assert main(["card", str(a), str(c), "-o", "-"]) == 1
    assert f"orgA/merge at commit {'f' * 12}" in capsys.readouterr().err


def test_runs_of_the_same_model_merge(tmp_path, capsys):
    weights = {"model.safetensors": "aa" * 32}
    a = make_run({"arc": 0.5}, model="./tiny", commit=None, weights=weights, finished="2025-01-01T00:00:00+00:00")
    b = make_run({"gsm8k": 0.25}, model="./tiny", commit=None, weights=weights, finished="2025-01-02T00:00:00+00:00")
    assert main(["card", str(write_run(tmp_path / "a", a)), str(write_run(tmp_path / "b", b)), "-o", "-"]) == 0
    results = our_results(front_matter(capsys.readouterr().out)["model-index"])
    values = {r["dataset"]["name"]: r["metrics"][0]["value"] for r in results}
    assert values == {"AI2 Reasoning Challenge (25-Shot)": 50.0, "GSM8k (5-shot)": 25.0}


def test_local_runs_without_weight_hashes_are_not_merged(tmp_path, capsys):
    a = write_run(tmp_path / "a", make_run({"arc": 0.5}, model="./tiny", commit=None))
    b = write_run(tmp_path / "b", make_run({"gsm8k": 0.5}, model="./tiny", commit=None))
    assert main(["card", str(a), str(b), "-o", "-"]) == 1
    err = capsys.readouterr().err
    assert "cannot tell that the runs are of the same model: ./tiny (no weight hashes recorded)" in err
    assert main(["card", str(a), "-o", "-"]) == 0  # one run alone is fine


# --- read-only cards ----------------------------------------------------------------------------


def test_a_read_only_card_is_refused_and_stays(tmp_path, seed_card, capsys):
    run_dir = write_run(tmp_path / "run", make_run(NEW))
    seed_card.chmod(0o444)
    before = seed_card.read_bytes()
    try:
        assert main(["card", str(run_dir), "--update", str(seed_card)]) == 1
        err = capsys.readouterr().err
        assert f"error: {seed_card}: the card is read-only; make it writable (chmod u+w {seed_card})" in err
        assert seed_card.read_bytes() == before and not seed_card.with_name("README.md.bak").exists()
        assert seed_card.stat().st_mode & 0o777 == 0o444
    finally:
        seed_card.chmod(0o644)
