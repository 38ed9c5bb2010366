"""HellaSwag preprocessing, prompts and acc_norm (spec leaderboard-v1.md §1.3, §3), on synthetic rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalsuite.benchmarks.table import BY_NAME
from evalsuite.data.sources import LocalDirSource
from evalsuite.pipeline.evaluate import prepare
from evalsuite.tasks import hellaswag
from synth import v1_draws, write_split

SPEC = BY_NAME["hellaswag"]


def hs_row(activity: str, ctx_a: str, ctx_b: str, endings: list[str], label: str) -> dict[str, Any]:
    return {
        "ind": 0,
        "activity_label": activity,
        "ctx_a": ctx_a,
        "ctx_b": ctx_b,
        "ctx": ctx_a + " " + ctx_b,
        "endings": endings,
        "source_id": "synthetic~0",
        "split": "val",
        "split_type": "indomain",
        "label": label,
    }


def process(row: dict[str, Any]) -> dict[str, Any]:
    return hellaswag.process_doc(row, "default")


# Train row i and the shot v1 makes of it: ctx_b capitalised with the rest lower-cased, gold ending i % 4.
TRAIN = [
    hs_row(
        f"Task {i}",
        f"Step {i} begins.",
        f"then worker {i} WAITS",
        [f"option {i}{j} ends." for j in range(4)],
        str(i % 4),
    )
    for i in range(12)
]
TRAIN_SHOT = {
    f"Task {i}": f"Task {i}: Step {i} begins. Then worker {i} waits option {i}{i % 4} ends." for i in range(12)
}
# Eval rows with the awkward cases, and the query and endings v1 makes of each.
VALIDATION = [
    hs_row(
        "Making tea",
        "A woman fills a KETTLE.",
        "then she POURS the Water",
        ["  stirs it.\n", "adds milk   slowly.", "[header] drinks.", "waits  a bit."],
        "2",
    ),
    hs_row(
        "Grilling",
        "Clean the grill [title] Scrub the grates.",
        "rinse them",
        ["dry them [step] well.", "oil them.", "cook.", "serve it."],
        "0",
    ),
    hs_row(
        "Knitting",
        "  She picks up the needles.",
        "she casts on",
        ["knits a row.", "purls    twice.", "drops a stitch.", "stops."],
        "3",
    ),
]
EXPECTED = {
    "Making tea": (
        "Making tea: A woman fills a KETTLE. Then she pours the water",
        ["stirs it.", "adds milk  slowly.", " drinks.", "waits a bit."],
    ),
    "Grilling": (
        "Grilling: Clean the grill. Scrub the grates. Rinse them",
        ["dry them well.", "oil them.", "cook.", "serve it."],
    ),
    "Knitting": (
        "Knitting:  She picks up the needles. She casts on",  # ":" + 3 spaces, one pass: 2 remain
        ["knits a row.", "purls  twice.", "drops a stitch.", "stops."],
    ),
}


def test_hellaswag_capitalize_lowercases_the_rest_of_ctx_b():
    doc = process(VALIDATION[0])
    assert doc["query"] == "Making tea: A woman fills a KETTLE. Then she pours the water"


def test_hellaswag_title_marker_becomes_a_full_stop_and_the_double_space_collapses():
    assert process(VALIDATION[1])["query"] == "Grilling: Clean the grill. Scrub the grates. Rinse them"


def test_hellaswag_brackets_are_removed_after_strip_so_a_leading_one_leaves_a_space():
    assert process(VALIDATION[0])["choices"][2] == " drinks."
    assert process(VALIDATION[1])["choices"][0] == "dry them well."


def test_hellaswag_double_spaces_are_replaced_in_one_pass():
    assert hellaswag.preprocess("adds milk   slowly.") == "adds milk  slowly."  # 3 spaces -> 2
    assert hellaswag.preprocess("purls    twice.") == "purls  twice."  # 4 spaces -> 2
    assert hellaswag.preprocess("waits  a bit.") == "waits a bit."


def test_hellaswag_strips_each_ending():
    assert process(VALIDATION[0])["choices"][0] == "stirs it."


def test_hellaswag_label_string_is_the_gold_index():
    assert [process(r)["gold"] for r in VALIDATION] == [2, 0, 3]


def test_hellaswag_prompt_is_10_shots_then_the_query_and_each_ending_after_one_space(tmp_path: Path):
    write_split(tmp_path, "Rowan/hellaswag", "default", "train", TRAIN)
    write_split(tmp_path, "Rowan/hellaswag", "default", "validation", VALIDATION)
    prepared = prepare(SPEC, LocalDirSource(tmp_path))
    expected = v1_draws(VALIDATION, TRAIN, 10)
    assert [VALIDATION[p.doc_id] for p in prepared] == [doc for doc, _ in expected]
    for item, (row, shots) in zip(prepared, expected, strict=True):
        query, endings = EXPECTED[row["activity_label"]]
        context = "".join(TRAIN_SHOT[s["activity_label"]] + "\n\n" for s in shots) + query
        assert [r.context for r in item.requests] == [context] * 4
        assert [r.continuation for r in item.requests] == [" " + e for e in endings]


def test_hellaswag_acc_norm_uses_the_preprocessed_ending_length():
    # "[header] go" is " go" after preprocessing (3 chars): -3.3/3 = -1.1 loses to "walk" -4.0/4 = -1.0.
    # Dividing by the raw 11 characters would make it win (-0.3).
    doc = process(hs_row("Walking", "He stands.", "he", ["[header] go", "walk", "fly away", "swim away"], "1"))
    assert doc["choices"][:2] == [" go", "walk"]
    assert hellaswag.score(doc, [-3.3, -4.0, -50.0, -50.0]).metrics == {"acc": 0.0, "acc_norm": 1.0}
