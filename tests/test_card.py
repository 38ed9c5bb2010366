"""evalsuite.card: model-index and results table from runs, in-place card updates, reading published cards.

Expected values come from the seed card (the leaderboard bot's own output) and from spec model-card.md §1.2.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalsuite import card
from evalsuite.benchmarks.table import BENCHMARKS, BY_NAME
from evalsuite.card.read import CardWarning
from evalsuite.card.splice import END_MARKER, START_MARKER
from evalsuite.cli.main import main
from evalsuite.errors import CardError, ConfigError
from evalsuite.fsio import atomic_write_json
from evalsuite.results import BenchmarkScore, ModelInfo, Provenance, RunResult

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "tests" / "data" / "seeds"
SEED = SEEDS / "BurningBruce-005.README.md"  # the bot's card, YAML indentation restored
SCRAPED = SEEDS / "000_69f2ea4ffe227e7a.txt"  # a scraped copy: page junk first, YAML flattened

# The seed's numbers, in the leaderboard's row order (its model-index and its body table agree).
SEED_PERCENTS = {
    "arc": 72.01,
    "hellaswag": 88.31,
    "mmlu": 64.76,
    "truthfulqa": 67.27,
    "winogrande": 83.35,
    "gsm8k": 71.49,
}
SEED_SOURCE = "https://huggingface.co/spaces/HuggingFaceH4/open_llm_leaderboard?query=ConvexAI/BurningBruce-005"
SEED_DETAILS = "https://huggingface.co/datasets/open-llm-leaderboard/details_ConvexAI__BurningBruce-005"

# Spec model-card.md §1.2, with the seed's values.
SEED_SECTION = """\
# [Open LLM Leaderboard Evaluation Results](https://huggingface.co/spaces/HuggingFaceH4/open_llm_leaderboard)
Detailed results can be found [here](https://huggingface.co/datasets/open-llm-leaderboard/details_ConvexAI__BurningBruce-005)

|             Metric              |Value|
|---------------------------------|----:|
|Avg.                             |74.53|
|AI2 Reasoning Challenge (25-Shot)|72.01|
|HellaSwag (10-Shot)              |88.31|
|MMLU (5-Shot)                    |64.76|
|TruthfulQA (0-shot)              |67.27|
|Winogrande (5-shot)              |83.35|
|GSM8k (5-shot)                   |71.49|
"""

pytestmark = pytest.mark.filterwarnings("ignore::evalsuite.card.read.CardWarning")


def make_run(
    fractions: dict[str, float],
    model: str = "org/model",
    finished: str = "2025-01-01T00:00:00+00:00",
    path: Path | None = None,
    smoke: bool = False,
    commit: str | None = "0123456789abcdef0123456789abcdef01234567",
    weights: dict[str, str] | None = None,
) -> RunResult:
    """A run as `evalsuite run` records it: a Hub model at `commit`, or (commit None) a local one with `weights`."""
    scores = {name: BenchmarkScore(name, BY_NAME[name].metric, value) for name, value in fractions.items()}
    provenance = Provenance(evalsuite_version="0.1.0", finished_at=finished, smoke=smoke, limit=3 if smoke else None)
    model = ModelInfo(id=model, commit=commit, weights_sha256=weights or {})
    return RunResult(model=model, scores=scores, provenance=provenance, path=path)


def write_run(path: Path, run: RunResult) -> Path:
    atomic_write_json(path / "results.json", run.to_dict())
    return path


def front_matter(text: str) -> dict:
    """The YAML between the first two `---` lines (an independent, simple reading)."""
    _, yaml_text, _ = text.split("---\n", 2)
    return yaml.safe_load(yaml_text)


def our_results(model_index: list) -> list[dict]:
    titles = {spec.title for spec in BENCHMARKS}
    return [r for entry in model_index for r in entry["results"] if r["dataset"]["name"] in titles]


def block_span(body: str, lb: str) -> tuple[int, int]:
    start = body.index(START_MARKER + lb)
    end = body.index(END_MARKER, start) + len(END_MARKER)
    return start, end + len(lb) if body[end:].startswith(lb) else end


def bot_section_span(text: str) -> tuple[int, int]:
    """The seed's bot section: its heading line through the last table line (`|...`) right after it."""
    lines = text.splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if ln.startswith(SEED_SECTION.split("\n")[0]))
    end = at + 2  # heading, details line
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    start = sum(len(ln) for ln in lines[:at])
    return start, start + sum(len(ln) for ln in lines[at:end])


def without_bot_section(text: str) -> str:
    start, end = bot_section_span(text)
    return text[:start] + text[end:]


def without_block(body: str, lb: str = "\n") -> str:
    if START_MARKER not in body:
        return body
    start, end = block_span(body, lb)
    return body[:start] + body[end:]


# --- reading the seed --------------------------------------------------------------------------


def test_reading_the_restored_seed_gives_its_six_percentages():
    run = card.read_card(SEED)
    assert run.provenance.source == "card"
    assert run.model.id == "BurningBruce-005"
    published = {
        r["dataset"]["name"]: r["metrics"][0]["value"]
        for r in our_results(front_matter(SEED.read_text())["model-index"])
    }
    for spec in BENCHMARKS:
        assert published[spec.title] == SEED_PERCENTS[spec.name]
        assert run.scores[spec.name].value == pytest.approx(SEED_PERCENTS[spec.name] / 100)  # fractions
        assert round(run.scores[spec.name].percent, 2) == SEED_PERCENTS[spec.name]


def test_the_seed_average_is_74_53():
    run = card.read_card(SEED)
    expected = (72.01 + 88.31 + 64.76 + 67.27 + 83.35 + 71.49) / 6  # 74.5316...
    assert f"{100 * run.average:.2f}" == f"{expected:.2f}" == "74.53"


def test_average_is_the_mean_of_the_unrounded_scores():
    # The leaderboard averaged the raw scores and rounded once: 4 x 50.0049 and 2 x 50.0101 average to
    # 50.0066 -> 50.01, while averaging the rounded cells (4 x 50.00, 2 x 50.01) would give 50.00.
    run = make_run(dict(zip([s.name for s in BENCHMARKS], [0.500049] * 4 + [0.500101] * 2, strict=True)))
    assert "|Avg.                             |50.01|" in card.render_metrics_table(run)


def test_regenerating_from_the_seed_values_reproduces_its_model_index():
    published = card.read_card(SEED)
    text = card.update_card_text(
        None,
        published,
        details=[SEED_DETAILS],
        source_url=SEED_SOURCE,
        source_name="Open LLM Leaderboard",
    )
    assert front_matter(text)["model-index"] == front_matter(SEED.read_text())["model-index"]


def test_the_table_has_the_leaderboards_padded_form():
    seed_lines = SEED.read_text().splitlines()
    at = seed_lines.index(SEED_SECTION.splitlines()[0])
    assert SEED_SECTION.splitlines()[1] == seed_lines[at + 1]  # heading and details line, as the bot wrote them
    assert card.render_metrics_table(card.read_card(SEED), SEED_DETAILS) == SEED_SECTION


def test_the_scraped_copy_is_read_from_its_body_table_with_a_warning():
    with pytest.warns(CardWarning, match=r"no YAML front matter at the top \(the '---' at line 4"):
        run = card.read_card(SCRAPED)
    assert {name: round(s.percent, 2) for name, s in run.scores.items()} == SEED_PERCENTS
    assert run.model.id == "BurningBruce-005"  # its first heading


def test_updating_the_scraped_copy_warns_and_gives_a_card_huggingface_hub_reads(tmp_path):
    from huggingface_hub import ModelCard

    path = tmp_path / "README.md"
    shutil.copy(SCRAPED, path)
    with pytest.warns(CardWarning, match=r"no YAML front matter at the top \(the '---' at line 4.*; adding one"):
        path.write_text(card.update_card_text(SCRAPED.read_text(), make_run(NEW), details=["."]))
    assert len(ModelCard.load(path).data.eval_results) == 6
    body = path.read_text().split("\n---\n", 1)[1]
    # the bot's section (the card's last lines, without a final line break) became our block
    assert body.endswith(END_MARKER) and body.count(START_MARKER) == 1
    assert body[: body.index(START_MARKER)] + body[body.index(END_MARKER) + len(END_MARKER) :] == (
        without_bot_section(SCRAPED.read_text())
    )


def test_flattened_front_matter_is_an_error_naming_the_line(tmp_path):
    lines = SCRAPED.read_text().splitlines(keepends=True)
    flattened = tmp_path / "README.md"
    flattened.write_text("".join(lines[3:]))  # the junk lines gone, the YAML still flattened
    # The first `- task:` still parses (an unindented list under `results:`); the second cannot follow a key.
    bad = [i for i, ln in enumerate(flattened.read_text().splitlines(), 1) if ln == "- task:"][1]
    with pytest.raises(CardError, match=rf"README.md: the YAML front matter is broken at line {bad}, column 1"):
        card.read_card(flattened)


def test_a_card_value_outside_0_to_100_is_an_error(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(SEED.read_text().replace("value: 88.31", "value: 883.1"))
    with pytest.raises(CardError, match=r"HellaSwag \(10-Shot\) is 883.1, outside 0..100"):
        card.read_card(path)


def test_a_card_without_any_of_the_six_is_an_error(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("---\nlicense: mit\n---\n# A model\n")
    with pytest.raises(CardError, match="no Open LLM Leaderboard results"):
        card.read_card(path)


def test_from_card_json_prints_fractions(capsys):
    assert main(["card", "--from-card", str(SEED), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["provenance"]["source"] == "card"
    assert data["benchmarks"]["gsm8k"]["value"] == 0.7149
    assert round(100 * data["average"], 2) == 74.53


# --- rendering runs ----------------------------------------------------------------------------


def test_a_missing_benchmark_leaves_out_the_average_and_says_what_is_missing():
    fractions = {name: SEED_PERCENTS[name] / 100 for name in SEED_PERCENTS if name != "gsm8k"}
    run = make_run(fractions)
    section = card.render_metrics_table(run, "runs/x")
    assert "|Avg." not in section
    assert "|MMLU (5-Shot)                    |64.76|" in section
    assert "GSM8k" not in section.split("Not evaluated:")[0]
    assert "Not evaluated: GSM8k (5-shot)." in section
    model_index = yaml.safe_load(card.render_model_index(run))["model-index"]
    assert [r["dataset"]["name"] for r in model_index[0]["results"]] == [s.title for s in BENCHMARKS][:5]


def test_model_index_has_the_leaderboard_fields_and_no_source_without_a_url():
    run = make_run({name: p / 100 for name, p in SEED_PERCENTS.items()}, model="ConvexAI/BurningBruce-005")
    (entry,) = yaml.safe_load(card.render_model_index(run))["model-index"]
    seed_entry = front_matter(SEED.read_text())["model-index"][0]
    assert entry["name"] == "BurningBruce-005"  # the bare name, as in the seed
    for ours, seed in zip(entry["results"], seed_entry["results"], strict=True):
        assert "source" not in ours
        assert ours == {k: v for k, v in seed.items() if k != "source"}


def test_source_name_defaults_to_evalsuite_and_needs_a_url(tmp_path, capsys, monkeypatch):
    run = make_run({"arc": 0.5})
    (result,) = card.eval_results(run, source_url="https://example.org/r")
    assert (result.source_name, result.source_url) == ("evalsuite", "https://example.org/r")
    with pytest.raises(ConfigError, match="--source-name needs --source-url"):
        card.eval_results(run, source_name="x")
    # the command line always has a url: the run's link when --source-url is not given
    monkeypatch.chdir(tmp_path)  # a printed card links from the working directory
    write_run(tmp_path / "run", run)
    assert main(["card", str(tmp_path / "run"), "--source-name", "x", "-o", "-"]) == 0
    (source,) = [r["source"] for r in our_results(front_matter(capsys.readouterr().out)["model-index"])]
    assert source == {"name": "x", "url": "run"}


def test_the_newest_result_per_benchmark_wins(tmp_path):
    old = write_run(tmp_path / "a", make_run({n: 0.5 for n in SEED_PERCENTS}, finished="2025-01-01T00:00:00+00:00"))
    new = write_run(tmp_path / "b", make_run({"arc": 0.25}, finished="2025-02-01T00:00:00+00:00"))
    out = tmp_path / "README.md"
    assert main(["card", str(new), str(old), "--output", str(out)]) == 0  # order given does not matter
    text = out.read_text()
    values = {r["dataset"]["name"]: r["metrics"][0]["value"] for r in our_results(front_matter(text)["model-index"])}
    assert values == {s.title: 25.0 if s.name == "arc" else 50.0 for s in BENCHMARKS}
    assert "|Avg.                             |45.83|" in text  # (25 + 5 * 50) / 6
    assert "Detailed results can be found in the runs [a](a), [b](b)" in text


def test_a_newer_smoke_run_does_not_replace_a_full_one(tmp_path, capsys):
    full = write_run(tmp_path / "a", make_run({n: 0.5 for n in SEED_PERCENTS}, finished="2025-01-01T00:00:00+00:00"))
    newer = make_run({"arc": 0.25, "mmlu": 0.25}, smoke=True, finished="2025-02-01T00:00:00+00:00")
    smoke = write_run(tmp_path / "b", newer)
    assert main(["card", str(smoke), str(full), "-o", "-"]) == 0
    captured = capsys.readouterr()
    index = front_matter(captured.out)["model-index"]
    values = {r["dataset"]["name"]: r["metrics"][0]["value"] for r in our_results(index)}
    assert values == {s.title: 50.0 for s in BENCHMARKS}  # all six from the full run
    assert "smoke-run scores for arc, mmlu left out; a full run has them" in captured.err


def test_runs_of_different_models_are_refused(tmp_path, capsys):
    a = write_run(tmp_path / "a", make_run({"arc": 0.5}, model="org/one"))
    b = write_run(tmp_path / "b", make_run({"arc": 0.5}, model="org/two"))
    assert main(["card", str(a), str(b), "-o", "-"]) == 1
    assert "error: the runs are of different models" in capsys.readouterr().err


def test_an_incomplete_run_directory_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    assert main(["card", str(tmp_path / "half")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a complete run directory" in err and err.count("\n") == 1


# --- updating cards ----------------------------------------------------------------------------

OTHER_RESULT = {
    "task": {"type": "question-answering", "name": "Question Answering"},
    "dataset": {"name": "SQuAD", "type": "squad", "split": "validation"},
    "metrics": [{"type": "f1", "value": 88.5}],
}
CARD_HEAD = """\
---
# kept: a comment above the license
license:   apache-2.0   # odd spacing, kept
tags: [merge,  moe]
"""
CARD_TAIL = """\
pipeline_tag: text-generation
widget:
  - text: "Hello"
---
Intro line before any heading.
# My model
Some *body* text.

## Usage
```python
# not a heading
```
"""


def card_with_old_results(lb: str = "\n") -> str:
    """A card with other metadata, a body, and our six (seed values) plus another task in its model-index."""
    seed_index = front_matter(SEED.read_text())["model-index"]
    seed_index[0]["results"].insert(2, OTHER_RESULT)
    model_index = yaml.safe_dump({"model-index": seed_index}, sort_keys=False, indent=4)
    return (CARD_HEAD + model_index + CARD_TAIL).replace("\n", lb)


NEW = {"arc": 0.6, "hellaswag": 0.7, "mmlu": 0.55, "truthfulqa": 0.45, "winogrande": 0.75, "gsm8k": 0.3}


@pytest.mark.parametrize("lb", ["\n", "\r\n"])
def test_update_changes_only_our_results_and_table(lb):
    old = card_with_old_results(lb)
    new = card.update_card_text(old, make_run(NEW), details=["runs/x"])
    head, tail = CARD_HEAD.replace("\n", lb), CARD_TAIL.replace("\n", lb)
    assert new.startswith(head)  # other keys and comments byte for byte
    head_end = new.index(lb + "pipeline_tag:") + len(lb)
    body_at = tail.index("---" + lb) + len("---" + lb)
    assert new[head_end:].startswith(tail[:body_at])
    assert without_block(new[head_end + body_at :], lb) == tail[body_at:]  # the body, outside our block
    index = front_matter(new.replace(lb, "\n"))["model-index"]
    assert index[0]["name"] == "BurningBruce-005"  # the card's own name is kept
    assert OTHER_RESULT in index[0]["results"]  # another task, untouched
    values = {r["dataset"]["name"]: r["metrics"][0]["value"] for r in our_results(index)}
    assert values == {s.title: round(100 * NEW[s.name], 2) for s in BENCHMARKS}  # replaced, not duplicated
    assert len(our_results(index)) == 6
    block = new[slice(*block_span(new, lb))]
    assert block.startswith(START_MARKER + lb + "# [Open LLM Leaderboard Evaluation Results]")
    assert new.index(START_MARKER) == new.index("# My model" + lb) + len("# My model" + lb)  # after 1st heading


def test_updating_twice_keeps_the_card_from_before_evalsuite(tmp_path, capsys):
    """`.bak` is the version an update replaced; `.orig` the first one evalsuite replaced, never overwritten."""
    path = tmp_path / "README.md"
    path.write_text(card_with_old_results(), encoding="utf-8")
    original = path.read_bytes()
    first_run = write_run(tmp_path / "run1", make_run(NEW, model="ConvexAI/BurningBruce-005"))
    second_run = write_run(
        tmp_path / "run2", make_run({k: v / 2 for k, v in NEW.items()}, model="ConvexAI/BurningBruce-005")
    )
    assert main(["card", str(first_run), "--update", str(path)]) == 0
    first = path.read_bytes()
    yaml = tmp_path / ".eval_results" / f"{BENCHMARKS[0].name}.yaml"
    first_yaml = yaml.read_bytes()
    assert main(["card", str(second_run), "--update", str(path)]) == 0
    assert path.read_bytes() not in (original, first)
    assert (tmp_path / "README.md.bak").read_bytes() == first
    assert (tmp_path / "README.md.orig").read_bytes() == original
    assert (
        yaml.with_name(yaml.name + ".orig").read_bytes()
        == first_yaml
        == yaml.with_name(yaml.name + ".bak").read_bytes()
    )
    capsys.readouterr()


def test_a_backup_left_by_an_earlier_release_becomes_the_original(tmp_path, capsys):
    """An earlier release kept only `.bak` (the card before its update): that is the version to keep."""
    path = tmp_path / "README.md"
    path.write_text(card_with_old_results(), encoding="utf-8")
    before_evalsuite = b"---\nlicense: mit\n---\n# the card as its author wrote it\n"
    (tmp_path / "README.md.bak").write_bytes(before_evalsuite)
    current = path.read_bytes()
    run_dir = write_run(tmp_path / "run", make_run(NEW, model="ConvexAI/BurningBruce-005"))
    assert main(["card", str(run_dir), "--update", str(path)]) == 0
    assert (tmp_path / "README.md.orig").read_bytes() == before_evalsuite
    assert (tmp_path / "README.md.bak").read_bytes() == current
    capsys.readouterr()


def test_a_second_identical_update_is_a_no_op_with_a_backup_of_the_first(tmp_path, capsys):
    path = tmp_path / "README.md"
    path.write_text(card_with_old_results(), encoding="utf-8")
    original = path.read_bytes()
    run_dir = write_run(tmp_path / "run", make_run(NEW, model="ConvexAI/BurningBruce-005"))
    assert main(["card", str(run_dir), "--update", str(path)]) == 0
    assert "card updated" in capsys.readouterr().out
    first = path.read_bytes()
    assert (tmp_path / "README.md.bak").read_bytes() == original
    assert main(["card", str(run_dir), "--update", str(path)]) == 0
    assert "card unchanged" in capsys.readouterr().out
    assert path.read_bytes() == first
    assert (tmp_path / "README.md.bak").read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".eval_results", "README.md", "README.md.bak", "README.md.orig", "run"
    ]  # fmt: skip
    # the six .eval_results files beside the card, written once (no temp files, no backups of unchanged ones)
    written = sorted(p.name for p in (tmp_path / ".eval_results").iterdir())
    assert written == sorted(f"{s.name}.yaml" for s in BENCHMARKS)


def test_updating_the_seed_keeps_its_body_and_other_keys(tmp_path):
    seed = SEED.read_text()
    new = card.update_card_text(seed, make_run(NEW, model="ConvexAI/BurningBruce-005"), details=["."])
    assert new.startswith(seed[: seed.index("model-index:")])
    seed_body = seed[seed.index("\n---\n") + len("\n---\n") :]
    new_body = new[new.index("\n---\n") + len("\n---\n") :]
    assert without_block(new_body) == without_bot_section(seed_body)  # the bot's section: in our block's place
    assert new_body.index(START_MARKER) == seed_body.index(SEED_SECTION.split("\n")[0])


def test_a_card_without_front_matter_gets_one_and_keeps_its_body():
    body = "Some text\n\n## Details\nmore\n"
    new = card.update_card_text(body, make_run(NEW), details=["."])
    assert new.startswith("---\nmodel-index:\n")
    assert without_block(new.split("\n---\n", 1)[1]) == body
    assert new.index(START_MARKER) == new.index("## Details\n") + len("## Details\n")


def test_a_block_after_a_last_line_without_line_break_adds_one():
    new = card.update_card_text("---\nlicense: mit\n---\n# Title", make_run(NEW), details=["."])
    assert new.split("\n---\n", 1)[1].startswith("# Title\n" + START_MARKER + "\n")


def test_flow_style_front_matter_is_rewritten_whole_with_a_warning():
    old = "---\n{license: mit, tags: [a, b]}\n---\n# T\n"
    with pytest.warns(CardWarning, match="could not be edited in place"):
        new = card.update_card_text(old, make_run(NEW), details=["."])
    meta = front_matter(new)
    assert (meta["license"], meta["tags"]) == ("mit", ["a", "b"])
    assert len(our_results(meta["model-index"])) == 6


def test_the_run_without_a_benchmark_keeps_the_cards_earlier_value():
    partial = {n: v for n, v in NEW.items() if n != "gsm8k"}
    with pytest.warns(CardWarning, match=r"the run has no GSM8k \(5-shot\); the card keeps its earlier value 71.49"):
        new = card.update_card_text(SEED.read_text(), make_run(partial), details=["."])
    values = {r["dataset"]["name"]: r["metrics"][0]["value"] for r in our_results(front_matter(new)["model-index"])}
    assert values["GSM8k (5-shot)"] == 71.49 and values["MMLU (5-Shot)"] == 55.0


def test_a_broken_card_is_an_error_naming_the_line_and_stays_unchanged(tmp_path, capsys):
    path = tmp_path / "README.md"
    path.write_text("---\nlicense: mit\ntags: [a, b\nfoo: 1\n---\n# T\n")
    before = path.read_bytes()
    run_dir = write_run(tmp_path / "run", make_run(NEW))
    assert main(["card", str(run_dir), "--update", str(path)]) == 1
    err = capsys.readouterr().err
    assert "error: " in err and "README.md: the YAML front matter is broken at line 4" in err  # `foo: 1`
    assert path.read_bytes() == before and not (tmp_path / "README.md.bak").exists()


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("on: push\n", r"front-matter keys \[True\] are not text .* quote them"),
        ("tags: 5\n", r"huggingface_hub cannot read the front matter \("),
        ("model-index: [{name: m, results: [{task: [x], dataset: {}, metrics: []}]}]\n", "cannot read"),
    ],
)
def test_front_matter_huggingface_hub_cannot_read_is_an_error(front, message):
    with pytest.raises(CardError, match=message):
        card.update_card_text(f"---\n{front}---\n# T\n", make_run(NEW), details=["."])


def test_stray_markers_are_an_error():
    text = f"---\nlicense: mit\n---\n# T\n{START_MARKER}\nno end\n"
    with pytest.raises(CardError, match="evalsuite needs exactly one of each"):
        card.update_card_text(text, make_run(NEW), details=["."])


def test_another_result_on_our_dataset_with_other_fields_is_an_error():
    other = {
        "task": {"type": "text-generation"},
        "dataset": {"name": "ARC (0-shot)", "type": "ai2_arc", "config": "ARC-Challenge", "split": "test"},
        "metrics": [{"type": "acc", "value": 50.0}],
    }
    meta = yaml.safe_dump({"model-index": [{"name": "m", "results": [other]}]}, sort_keys=False)
    with pytest.raises(CardError, match="share dataset ai2_arc ARC-Challenge test but differ in"):
        card.update_card_text(f"---\n{meta}---\n# m\n", make_run(NEW), details=["."])


# --- the property: everything outside our part survives byte for byte ------------------------------

_WORD = st.from_regex(r"[a-z][a-z0-9._-]{0,10}", fullmatch=True)
# keys YAML reads as text (unquoted `on`, `no`, `y` are booleans: bad input, tested on its own)
_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(lambda k: yaml.safe_load(f"{k}: 1") == {k: 1})
_VALUE_LINES = st.one_of(
    st.builds(lambda w, sp, c: [f":{sp}{w}{c}"], _WORD, st.sampled_from([" ", "   "]), st.sampled_from(["", "  # c"])),
    st.builds(lambda n: [f": {n}"], st.integers(-5, 10**6)),
    st.builds(lambda ws: [f": [{', '.join(ws)}]"], st.lists(_WORD, max_size=3)),
    st.builds(
        lambda ws, ind: [":"] + [f"{ind}- {w}" for w in ws],
        st.lists(_WORD, min_size=1, max_size=3),
        st.sampled_from(["", "  "]),
    ),
    st.builds(lambda w: [":", f"  sub: {w}", "  # inner comment", "  other: 'x y'"], _WORD),
    st.builds(lambda w: [f': &anchor_@KEY "quoted: {w}"  # anchored'], _WORD),  # @KEY: anchors are unique
    st.builds(lambda ws: [": |"] + [f"  {w}" for w in ws], st.lists(_WORD, min_size=1, max_size=2)),
)
_LEADING = st.lists(st.sampled_from(["", "# a comment", "#", "# model-index: not a key"]), max_size=2)
_BODY_LINE = st.one_of(
    st.sampled_from(["# Title", "## Part", "", "text", "| a | b |", "```", "# in code?", "***", "<!-- note -->"]),
    st.builds(lambda w: f"{w} words", _WORD),
)


@st.composite
def cards(draw):
    """(line break, other-key lines before model-index, its lines or None, lines after, body, front matter?)"""
    lb = draw(st.sampled_from(["\n", "\r\n"]))
    keys = draw(st.lists(_KEY, unique=True, max_size=5))
    quote = draw(st.sampled_from(["", '"']))
    chunks = [
        [*draw(_LEADING), quote + key + quote + line0.replace("@KEY", key), *rest]
        for key in keys
        for line0, *rest in [draw(_VALUE_LINES)]
    ]
    old = draw(st.sampled_from(["none", "ours", "ours+other", "ours-indented"]))
    at = draw(st.integers(0, len(chunks)))
    mi_lines = None
    if old != "none":
        index = front_matter(SEED.read_text())["model-index"]
        if old == "ours+other":
            index[0]["results"].append(OTHER_RESULT)
        dumped = yaml.safe_dump({"model-index": index}, sort_keys=False, indent=4 if old == "ours-indented" else 2)
        mi_lines = dumped.rstrip("\n").split("\n")
    before = [ln for chunk in chunks[:at] for ln in chunk]
    after = [ln for chunk in chunks[at:] for ln in chunk]
    has_front_matter = bool(chunks) or mi_lines is not None or draw(st.booleans())
    body_lines = draw(st.lists(_BODY_LINE, max_size=8))
    body = lb.join(body_lines) + (lb if body_lines and draw(st.booleans()) else "")
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return lb, before, mi_lines, after, body, has_front_matter, bom


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cards(), st.lists(st.floats(0, 1), min_size=6, max_size=6))
def test_everything_outside_our_part_survives_byte_for_byte(generated, fractions):
    lb, before, mi_lines, after, body, has_front_matter, bom = generated
    old_yaml = lb.join(before + (mi_lines or []) + after)
    old = bom + (f"---{lb}{old_yaml}{lb}---{lb}{body}" if has_front_matter else body)
    run = make_run(dict(zip(SEED_PERCENTS, fractions, strict=True)))
    earlier = make_run(dict.fromkeys(SEED_PERCENTS, 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CardWarning)
        new = card.update_card_text(old, run, details=["runs/x"])
        assert card.update_card_text(new, run, details=["runs/x"]) == new  # a second update: same bytes
        updated_before = card.update_card_text(old, earlier, details=["runs/old"])
        assert card.update_card_text(updated_before, run, details=["runs/x"]) == new  # the latest update wins
    assert new.startswith(bom)
    new = new[len(bom) :]

    # front matter: the lines of the other keys (and comments) before and after model-index, byte for byte
    if "\n" not in old and "\r" not in old:
        lb = "\n"  # no line break to follow
    assert new.startswith(f"---{lb}")
    new_yaml, new_body = new[len(f"---{lb}") :].split(f"{lb}---{lb}", 1)
    # (a new model-index goes at the end, or at the start where the end would change a block scalar)
    splits = [(before, after)] if mi_lines is not None else [(before + after, []), ([], before + after)]
    ways = [(lb.join(b) + lb if b else "", lb + lb.join(a) if a else "") for b, a in splits]
    prefix, suffix = next((p, s) for p, s in ways if new_yaml.startswith(p) and new_yaml.endswith(s))
    middle = yaml.safe_load(new_yaml[len(prefix) : len(new_yaml) - len(suffix)])
    assert list(middle) == ["model-index"]

    # body: everything outside the marker block; a line break is added only after a last line without one
    kept = without_block(new_body, lb)
    assert kept == body or (not body.endswith(lb) and kept == body + lb and new_body.endswith(END_MARKER + lb))

    # our six results, replaced and not duplicated; another task's result untouched
    index = middle["model-index"]
    values = {r["dataset"]["name"]: r["metrics"][0]["value"] for r in our_results(index)}
    assert values == {s.title: round(100 * f, 2) for s, f in zip(BENCHMARKS, fractions, strict=True)}
    assert len(our_results(index)) == 6
    assert (OTHER_RESULT in index[0]["results"]) == ("  type: squad" in lb.join(mi_lines or []))


# --- command line, files and the Hub ---------------------------------------------------------------


@pytest.mark.slow
def test_make_card_on_a_real_run_writes_a_card_modelcard_loads(tiny_run, tmp_path, capsys):
    from huggingface_hub import ModelCard

    run_dir = shutil.copytree(tiny_run, tmp_path / "run")
    assert main(["card", str(run_dir)]) == 0  # make card RUN=...: README.md in the run directory
    assert capsys.readouterr().out == f"card created: {run_dir / 'README.md'}\n"
    loaded = ModelCard.load(run_dir / "README.md")
    assert [r.dataset_name for r in loaded.data.eval_results] == [s.title for s in BENCHMARKS]
    assert "Detailed results can be found [here](results.json)" in loaded.text  # the run's own file, not "."

    readme = tmp_path / "card" / "README.md"
    readme.parent.mkdir()
    readme.write_text("---\nlicense: mit\n---\n# tiny\nbody\n")
    assert main(["card", str(run_dir), "--update", str(readme)]) == 1  # a --limit run: refused for a card
    assert "refusing to put smoke-run scores (--limit 3" in capsys.readouterr().err
    assert main(["card", str(run_dir), "--update", str(readme), "--allow-smoke"]) == 0  # make card RUN=... CARD=...
    loaded = ModelCard.load(readme)
    assert len(loaded.data.eval_results) == 6 and loaded.data.license == "mit"
    assert "Detailed results can be found [here](../run)" in loaded.text


@pytest.mark.slow
def test_the_run_directory_has_the_leaderboard_section_and_model_index(tiny_run):
    metrics = (tiny_run / "metrics.md").read_text()
    assert metrics.startswith(SEED_SECTION.split("\n")[0] + "\nDetailed results can be found [here](results.json)\n\n")
    assert "|             Metric              |Value|\n|---------------------------------|----:|\n|Avg." in metrics
    model_index = yaml.safe_load((tiny_run / "model-index.yaml").read_text())["model-index"]
    assert model_index[0]["name"] == "tiny-moe" and len(model_index[0]["results"]) == 6


def test_output_refuses_to_overwrite_and_dash_prints(tmp_path, capsys):
    run_dir = write_run(tmp_path / "run", make_run(NEW))
    taken = tmp_path / "taken.md"
    taken.write_text("mine\n")
    assert main(["card", str(run_dir), "--output", str(taken)]) == 1
    assert "use --update" in capsys.readouterr().err and taken.read_text() == "mine\n"
    assert main(["card", str(run_dir), "--output", "-"]) == 0
    printed = capsys.readouterr().out
    assert (
        printed.startswith("---\nmodel-index:\n- name: model\n")
        and "|Avg.                             |55.83|" in printed
    )


def test_hub_card_uploads_the_updated_text_byte_for_byte():
    text = card.update_card_text(card_with_old_results("\r\n"), make_run(NEW), details=["https://example.org/d"])
    pushed = card.hub_card(text)
    assert str(pushed) == text  # what push_to_hub writes and validates
    assert len(pushed.data.eval_results) == 7


def test_push_offline_fails_cleanly_and_leaves_the_card_unchanged(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    path = tmp_path / "README.md"
    path.write_text(card_with_old_results())
    before = path.read_bytes()
    run_dir = write_run(tmp_path / "run", make_run(NEW, model="ConvexAI/BurningBruce-005"))
    assert main(["card", str(run_dir), "--update", str(path), "--push", "org/model"]) == 1
    err = capsys.readouterr().err
    assert "error: model org/model: HF_HUB_OFFLINE is set" in err and "nothing was pushed or written" in err
    assert path.read_bytes() == before
    assert main(["card", str(run_dir), "--push", "org/model"]) == 1  # no local card: fetches the Hub's
    assert "error: model org/model: HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_from_card_and_runs_do_not_mix(tmp_path, capsys):
    run_dir = write_run(tmp_path / "run", make_run(NEW))
    assert main(["card", str(run_dir), "--from-card", str(SEED)]) == 1
    assert "--from-card reads a card" in capsys.readouterr().err


def test_a_card_of_another_model_is_refused_unless_the_name_is_given(tmp_path, capsys):
    path = tmp_path / "README.md"
    path.write_text(card_with_old_results(), encoding="utf-8")
    original = path.read_bytes()
    run_dir = write_run(tmp_path / "run", make_run(NEW, model="org/tiny-moe"))
    assert main(["card", str(run_dir), "--update", str(path)]) == 1
    err = capsys.readouterr().err
    assert "'BurningBruce-005'" in err and "'tiny-moe'" in err and "--model-name BurningBruce-005" in err
    assert path.read_bytes() == original and not (tmp_path / "README.md.bak").exists()
    # Saying which name the results go under is the decision the refusal asks for.
    assert main(["card", str(run_dir), "--update", str(path), "--model-name", "BurningBruce-005"]) == 0
    assert path.read_bytes() != original


# --- a model name is text ------------------------------------------------------------------------------

HOSTILE = 'evil<img src=x onerror="alert(1)">[click](phish.html)`x`'


def test_a_model_name_with_markup_shows_as_text_in_heading_and_model_index():
    text = card.update_card_text(None, make_run(NEW, model=f"org/{HOSTILE}"), details=["runs/x"])
    from markdown_it import MarkdownIt

    body = text.split("---\n", 2)[2]
    html = MarkdownIt("commonmark").render(body.split("\n", 1)[0])  # the heading as the Hub renders it
    assert "<img" not in html and 'href="phish.html"' not in html and "<code>" not in html
    assert "evil&lt;img" in html  # the name is still there, as text
    name = front_matter(text)["model-index"][0]["name"]
    assert "<img" not in MarkdownIt("commonmark").renderInline(name) and "phish" in name


def test_model_name_that_renames_a_card_says_so():
    first = card.update_card_text(None, make_run(NEW), details=["runs/x"])
    with pytest.warns(card.CardWarning, match=r"renames the model-index from 'model' to 'other-name'"):
        again = card.update_card_text(first, make_run(NEW), details=["runs/x"], model_name="other-name")
    assert front_matter(again)["model-index"][0]["name"] == "other-name"
