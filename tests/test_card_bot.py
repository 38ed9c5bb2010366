"""The leaderboard bot's results section: `card --update` puts evalsuite's section in its place (never a
second one), and `--from-card` says when sections or the model-index disagree.

Expected bytes are cut out of the seed card (the bot's own output) with plain string operations.
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_card import NEW, SEED, SEED_PERCENTS, bot_section_span, front_matter, make_run, our_results, write_run

from evalsuite import card
from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.card.read import CardWarning
from evalsuite.card.source import Origin, run_source_name
from evalsuite.card.splice import END_MARKER, START_MARKER
from evalsuite.cli.main import main
from evalsuite.errors import CardError

HEADING_TEXT = "Open LLM Leaderboard Evaluation Results"
HEADING = f"# [{HEADING_TEXT}](https://huggingface.co/spaces/HuggingFaceH4/open_llm_leaderboard)"


def model_index_span(text: str) -> tuple[int, int]:
    """From the `model-index:` line to the closing `---` line of the front matter."""
    start = text.index("\nmodel-index:\n") + 1
    return start, text.index("\n---\n", start) + 1


def test_updating_the_restored_seed_replaces_the_bots_section_in_place(tmp_path, capsys):
    seed = SEED.read_text(encoding="utf-8")
    path = tmp_path / "README.md"
    shutil.copy(SEED, path)
    run_dir = write_run(tmp_path / "20260101T000000Z", make_run(NEW, model="ConvexAI/BurningBruce-005"))

    assert main(["card", str(run_dir), "--update", str(path)]) == 0
    assert "card updated" in capsys.readouterr().out
    new = path.read_text(encoding="utf-8")

    # Every byte outside the model-index and the bot's section is the seed's.
    mi_start, mi_end = model_index_span(seed)
    bot_start, bot_end = bot_section_span(seed)
    assert bot_end == len(seed)  # the bot's section ends the seed card
    new_mi_start, new_mi_end = model_index_span(new)
    assert new[:new_mi_start] == seed[:mi_start]
    between = seed[mi_end:bot_start]
    assert new[new_mi_end : new_mi_end + len(between)] == between
    ours = new[new_mi_end + len(between) :]
    # ...and the bot's section became our block, in its place: one section, at the card's end as before.
    assert ours.startswith(START_MARKER + "\n" + HEADING + "\n") and ours.endswith(END_MARKER + "\n")
    assert new.count(HEADING_TEXT) == 1
    expected_average = (60 + 70 + 55 + 45 + 75 + 30) / 6  # NEW in percent
    assert f"|Avg.                             |{expected_average:.2f}|" in ours

    results = our_results(front_matter(new)["model-index"])
    assert len(results) == 6
    assert {r["dataset"]["name"]: r["metrics"][0]["value"] for r in results} == {
        s.title: round(100 * NEW[s.name], 2) for s in BENCHMARKS
    }
    for r in results:
        assert r["source"]["name"] == "evalsuite 0.1.0 run 20260101T000000Z"
        assert r["source"]["url"] == "20260101T000000Z"  # the run directory, relative to the card
        assert "args" not in r["metrics"][0]  # a full run carries no smoke mark

    assert main(["card", str(run_dir), "--update", str(path)]) == 0
    assert "card unchanged" in capsys.readouterr().out
    assert path.read_text(encoding="utf-8") == new

    assert main(["card", "--from-card", str(path)]) == 0
    assert "disagree" not in capsys.readouterr().err


# --- the property: the bot's section anywhere ------------------------------------------------------

_PLAIN_LINE = st.one_of(
    st.sampled_from(["# Title", "## Part", "", "text", "***", "<!-- note -->", "- item", "Detailed results can be"]),
    st.from_regex(r"[a-z][a-z ]{0,12}", fullmatch=True),
)
# A copy of the bot's section inside a code block is an example, not a section: it stays.
_FENCED_COPY = ["```markdown", HEADING, "|Avg.                             |74.53|", "```"]
_UNIT = st.one_of(_PLAIN_LINE.map(lambda line: [line]), st.just(_FENCED_COPY), st.just(["| a | b |", "|---|---|"]))


@st.composite
def bot_sections(draw) -> list[str]:
    """The bot's section as found on the Hub: heading with or without the link, details line or not,
    padded table or a scraped one, a stray `|` line after it or not."""
    heading = draw(st.sampled_from([HEADING, f"# {HEADING_TEXT}", f"## [{HEADING_TEXT}](x)"]))
    seed_lines = SEED.read_text(encoding="utf-8")[slice(*bot_section_span(SEED.read_text(encoding="utf-8")))]
    table = [ln for ln in seed_lines.split("\n") if ln.startswith("|") and ln != "|"]
    if draw(st.booleans()):  # padded, as the bot wrote it
        table = card.render_metrics_table(card.read_card(SEED), "x").split("\n")[3:10]
    details = draw(st.sampled_from([[], [seed_lines.split("\n")[1]], [seed_lines.split("\n")[1], ""]]))
    return [heading, *details, *table, *draw(st.sampled_from([[], ["|"]]))]


@st.composite
def bodies(draw):
    lb = draw(st.sampled_from(["\n", "\r\n"]))
    before = [ln for unit in draw(st.lists(_UNIT, max_size=5)) for ln in unit]
    after = [ln for unit in draw(st.lists(_UNIT, max_size=5)) for ln in unit]
    if after and after[0].startswith("|"):
        after.insert(0, "")  # a table line right after the bot's table would be a row of it
    section = draw(bot_sections())
    ends_with_break = draw(st.booleans()) or bool(after)
    before_text = "".join(ln + lb for ln in before)
    section_text = lb.join(section) + (lb if ends_with_break else "")
    after_text = lb.join(after) + (lb if after and draw(st.booleans()) else "")
    front = draw(st.sampled_from(["", "---\nlicense: mit\n---\n"])).replace("\n", lb)
    return lb, front, before_text, section_text, after_text


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies(), st.lists(st.floats(0, 1), min_size=6, max_size=6))
def test_the_bots_section_anywhere_is_replaced_in_place(generated, fractions):
    lb, front, before, section, after = generated
    old = front + before + section + after
    run = make_run(dict(zip(SEED_PERCENTS, fractions, strict=True)), path=Path("runs/x"))
    source = Origin(source_name=run_source_name(run), source_url="runs/x")
    origins = dict.fromkeys(SEED_PERCENTS, source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CardWarning)
        new = card.update_card_text(old, run, details=["runs/x"], origins=origins)
        assert card.update_card_text(new, run, details=["runs/x"], origins=origins) == new  # a second: same bytes

    head, body = new.split(f"{lb}---{lb}", 1)
    assert head.startswith(f"---{lb}license: mit{lb}" if front else f"---{lb}model-index:")
    results = our_results(yaml.safe_load(head[len(f"---{lb}") :])["model-index"])
    assert [r["source"] for r in results] == [{"name": "evalsuite 0.1.0 run x", "url": "runs/x"}] * 6
    assert body.startswith(before) and body.endswith(after)
    ours = body[len(before) : len(body) - len(after)]
    # exactly our block where the bot's section was, ending the way the section ended
    assert ours.startswith(START_MARKER + lb) and ours.endswith(END_MARKER + (lb if section.endswith(lb) else ""))
    assert ours.count(HEADING_TEXT) == 1 and START_MARKER not in before + after
    for spec, fraction in zip(BENCHMARKS, fractions, strict=True):
        assert re.search(rf"\|{re.escape(spec.title)} *\| *{100 * fraction:.2f}\|", ours)


# --- several sections, unrecognisable ones ----------------------------------------------------------


def test_several_bot_sections_are_reported_and_only_the_last_is_replaced():
    seed = SEED.read_text(encoding="utf-8")
    start, end = bot_section_span(seed)
    twice = seed[:start] + seed[start:end] + "\nMore text.\n\n" + seed[start:end]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CardWarning)
        new = card.update_card_text(twice, make_run(NEW), details=["."])
    assert new.count(HEADING_TEXT) == 2  # the first stays (the user's to delete); none is added
    assert new.endswith(END_MARKER + "\n")
    assert seed[start:end] + "\nMore text.\n\n" + START_MARKER in new
    first = new[: new.index(HEADING)].count("\n") + 1
    ours = new[: new.rindex(HEADING)].count("\n") + 1
    expected = (
        f"the card has 2 Open LLM Leaderboard results sections (lines {first}, {ours}); "
        f"evalsuite's is the one at line {ours}"
    )
    assert any(expected in str(w.message) for w in caught)


def test_a_leaderboard_heading_without_its_table_is_an_error_and_the_card_stays(tmp_path, capsys):
    path = tmp_path / "README.md"
    path.write_text(f"---\nlicense: mit\n---\n# M\n\n# {HEADING_TEXT}\nSee the leaderboard.\n", encoding="utf-8")
    before = path.read_bytes()
    run_dir = write_run(tmp_path / "run", make_run(NEW))
    assert main(["card", str(run_dir), "--update", str(path)]) == 1
    err = capsys.readouterr().err
    assert "README.md: line 6 has the heading of the leaderboard's results section but no results table" in err
    assert path.read_bytes() == before
    with pytest.raises(CardError, match="put `<!-- evalsuite:results:start -->`"):
        card.update_card_text(before.decode(), make_run(NEW), details=["."])


def test_another_leaderboards_section_is_left_alone():
    v2 = f"{HEADING}\n\n|Metric|Value|\n|---|--:|\n|IFEval (0-Shot)|40.1|\n"
    old = f"---\nlicense: mit\n---\n# M\n{v2}"
    new = card.update_card_text(old, make_run(NEW), details=["."])
    assert new.endswith(v2) and new.index(START_MARKER) == new.index("# M\n") + len("# M\n")


# --- reading: disagreements are said -------------------------------------------------------------


def test_from_card_warns_when_the_body_table_and_the_model_index_disagree(tmp_path):
    # A card as the earlier evalsuite left it: its section after the first heading (model-index updated),
    # the bot's section with the published numbers still at the end.
    seed = SEED.read_text(encoding="utf-8")
    start, end = bot_section_span(seed)
    run = make_run(NEW, model="ConvexAI/BurningBruce-005")
    damaged = card.update_card_text(seed[:start] + seed[end:], run, details=["."]) + seed[start:end]
    assert damaged.index("# BurningBruce-005\n") < damaged.index(START_MARKER) < damaged.rindex(HEADING)
    path = tmp_path / "README.md"
    path.write_text(damaged, encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CardWarning)
        run = card.read_card(path)
    messages = [str(w.message) for w in caught]
    assert any("the card has 2 Open LLM Leaderboard results sections" in m for m in messages)
    line = damaged[: damaged.rindex(HEADING)].count("\n") + 1
    disagree = [m for m in messages if f"the model-index and the results table (line {line}) disagree" in m]
    assert disagree and "AI2 Reasoning Challenge (25-Shot) 60.0 vs 72.01" in disagree[0]
    assert "Avg. 55.83 vs 74.53" in disagree[0]
    assert round(run.scores["arc"].percent, 2) == 60.0  # the model-index is what is read


def test_the_seed_itself_reads_without_disagreement():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CardWarning)
        card.read_card(SEED)
    assert [str(w.message) for w in caught] == []
