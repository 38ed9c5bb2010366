"""`evalsuite merge`: tiny Llama experts merged by mergekit-moe into tiny Mixtrals (two gate modes),
evaluated on the sample data; the runs, the comparison, router versus intent and the merged weights."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import run_cli

EXPERT_SEEDS = {"expert-science": 21, "expert-stories": 22, "expert-math": 23}
PROMPTS = {
    "expert-science": ["Which of these is a property of a metal? Answer:"],
    "expert-stories": ["She opened the door, looked around the kitchen and then"],
    "expert-math": ["Question: Tom has 3 apples and buys 5 more. How many apples? Answer:"],
}
GATE_MODES = ("hidden", "cheap_embed")
BENCHMARKS = ("arc", "hellaswag")
RECIPE_NAME = "tiny-moe"


def _write_recipe(path: Path, **changes: object) -> Path:
    recipe = {
        "base_model": "experts/expert-science",
        "gate_mode": "hidden",
        "dtype": "float32",
        "experts": [{"source_model": f"experts/{name}", "positive_prompts": p} for name, p in PROMPTS.items()],
        **changes,
    }
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Three tiny Llama experts (the demo tokenizer, one weight seed each) beside a recipe naming them by
    relative path; merges are cached in this directory too."""
    from evalsuite.demo import build_tiny_model

    root = tmp_path_factory.mktemp("merge")
    for name, seed in EXPERT_SEEDS.items():
        build_tiny_model(root / "experts" / name, arch="llama", seed=seed)
    _write_recipe(root / f"{RECIPE_NAME}.yml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVALSUITE_CACHE", str(root / "cache"))
        yield root


@pytest.fixture(scope="module")
def report(workdir: Path) -> Path:
    out = workdir / "report"
    code = run_cli(
        "merge", str(workdir / f"{RECIPE_NAME}.yml"),
        "--gate-modes", ",".join(GATE_MODES),
        "--output-dir", str(out),
        "--sample-data", "--limit", "2", "--benchmarks", ",".join(BENCHMARKS),
        "--threads", "1", "--no-progress",
    )  # fmt: skip
    assert code == 0
    return out


def _merged_dir(report: Path, mode: str) -> Path:
    manifest = json.loads((report / "merge.json").read_text(encoding="utf-8"))
    return Path(next(v["model_dir"] for v in manifest["variants"] if v["gate_mode"] == mode)).expanduser()


def _table(markdown: str, section: str) -> list[list[str]]:
    """The body rows of the markdown table under `## section`."""
    block = markdown.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in block.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row] for row in rows[2:]]


@pytest.mark.slow
def test_each_variant_is_a_complete_run_with_its_card(report: Path) -> None:
    from evalsuite.results import load_run

    for mode in GATE_MODES:
        run = load_run(report / mode)
        assert run.model.id == str(_merged_dir(report, mode))
        assert run.model.architecture == "MixtralForCausalLM"
        assert sorted(run.scores) == sorted(BENCHMARKS)
        assert all(run.scores[b].n_docs == 2 for b in BENCHMARKS)
        assert run.provenance.limit == 2 and run.provenance.smoke
        assert "merge_gate_init" in run.provenance.seeds
        for name in ("model-index.yaml", "metrics.md", "router_stats.parquet", "README.md"):
            assert (report / mode / name).is_file(), name
        assert sorted(p.stem for p in (report / mode / "samples").glob("*.jsonl")) == sorted(BENCHMARKS)
        card = (report / mode / "README.md").read_text(encoding="utf-8")
        assert f"name: {RECIPE_NAME}-{mode}" in card
    assert (report / "report.md").is_file() and (report / "router_intent.png").is_file()
    assert (report / "recipe.yml").read_bytes() == (report.parent / f"{RECIPE_NAME}.yml").read_bytes()


@pytest.mark.slow
def test_what_mergekit_warns_of_is_in_the_report(
    report: Path, workdir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """mergekit-moe, run here on its own over the same recipe, warns (the tiny random experts' hidden
    states route alike); each warning is under the report's Warnings, with its gate mode."""
    import logging

    from mergekit.merge import MergeOptions
    from mergekit.moe.config import MoEMergeConfig
    from mergekit.scripts.moe import build

    from evalsuite.merge.recipe import load_recipe

    config = load_recipe(workdir / f"{RECIPE_NAME}.yml").mergekit_config("hidden")
    with caplog.at_level(logging.WARNING):
        build(
            MoEMergeConfig.model_validate(config),
            out_path=str(tmp_path / "m"),
            merge_options=MergeOptions(device="cpu", quiet=True),
            device="cpu",
        )
    warned = {r.getMessage().strip() for r in caplog.records if r.levelno >= logging.WARNING}
    assert warned
    text = (report / "report.md").read_text(encoding="utf-8")
    section = text[text.index("### Warnings") :]
    for message in warned:
        assert f"- mergekit-moe, gate mode hidden: {message}" in section


def test_comparison_has_one_row_per_variant_and_paired_tests(report: Path) -> None:
    compare_md = (report / "compare" / "compare.md").read_text(encoding="utf-8")
    assert [row[0] for row in _table(compare_md, "Scores (%)")] == [f"{RECIPE_NAME}-{m}" for m in GATE_MODES]
    baseline = f"{RECIPE_NAME}-{GATE_MODES[0]}"
    paired = _table(compare_md, f"Paired significance against {baseline}")
    tested = [(row[0], row[1]) for row in paired if row[1] in BENCHMARKS]
    assert tested == [(f"{RECIPE_NAME}-{GATE_MODES[1]}", b) for b in BENCHMARKS]
    assert all(row[2] == "2" for row in paired if row[1] in BENCHMARKS)  # the same 2 documents, paired


@pytest.mark.slow
def test_router_intent_shares_are_the_router_counts_and_sum_to_one_per_layer(report: Path) -> None:
    import pandas as pd

    table = pd.read_csv(report / "router_intent.csv")
    sums = table.groupby(["variant", "benchmark", "layer"])["share"].sum()
    assert len(sums) == len(GATE_MODES) * len(BENCHMARKS) * 2  # two layers
    assert sums.to_numpy() == pytest.approx(1.0)
    for mode in GATE_MODES:
        counts = pd.read_parquet(report / mode / "router_stats.parquet")
        for row in table[table["variant"] == mode].itertuples():
            layer = counts[(counts["benchmark"] == row.benchmark) & (counts["layer"] == row.layer)]
            expected = layer.loc[layer["expert"] == row.expert, "tokens"].sum() / layer["tokens"].sum()
            assert row.share == pytest.approx(expected)
            assert row.model == list(PROMPTS)[row.expert]
            assert row.positive_prompts == " | ".join(PROMPTS[row.model])


@pytest.mark.slow
def test_merged_experts_are_the_source_experts_mlps(report: Path, workdir: Path) -> None:
    import torch
    from safetensors.torch import load_file

    sources = {name: load_file(workdir / "experts" / name / "model.safetensors") for name in EXPERT_SEEDS}
    base = sources["expert-science"]
    routers = {}
    for mode in GATE_MODES:
        merged = load_file(_merged_dir(report, mode) / "model.safetensors")
        for layer in range(2):
            mlp = f"model.layers.{layer}.mlp"
            for e, name in enumerate(EXPERT_SEEDS):
                src = sources[name]
                # Mixtral's fused layout: gate_proj rows, then up_proj rows (MixtralExperts chunks them so).
                gate_up = torch.cat([src[f"{mlp}.gate_proj.weight"], src[f"{mlp}.up_proj.weight"]], dim=0)
                assert torch.equal(merged[f"{mlp}.experts.gate_up_proj"][e], gate_up)
                assert torch.equal(merged[f"{mlp}.experts.down_proj"][e], src[f"{mlp}.down_proj.weight"])
            routers[mode, layer] = merged[f"{mlp}.gate.weight"]
        for key in ("model.embed_tokens.weight", "model.layers.1.self_attn.q_proj.weight", "lm_head.weight"):
            assert torch.equal(merged[key], base[key])  # everything but the MLPs comes from the base model
    assert not torch.equal(routers["hidden", 1], routers["cheap_embed", 1])


@pytest.mark.slow
def test_a_second_merge_reuses_the_cache_until_an_expert_changes(report: Path, workdir: Path) -> None:
    from evalsuite.merge.build import build_variant
    from evalsuite.merge.recipe import load_recipe

    recipe = load_recipe(workdir / f"{RECIPE_NAME}.yml")
    again = build_variant(recipe, "hidden")
    assert again.reused and again.model_dir == _merged_dir(report, "hidden")
    before = recipe.digest()
    assert again.model_dir.parent.name == before  # the cache is keyed by the digest
    config = workdir / "experts" / "expert-math" / "config.json"
    config.write_text(config.read_text(encoding="utf-8") + "\n", encoding="utf-8")  # the expert changed
    assert load_recipe(workdir / f"{RECIPE_NAME}.yml").digest() != before


# --- router versus intent on router counts written by hand ----------------------------------------


def test_starved_experts_and_collapsed_gates_are_warned(tmp_path: Path) -> None:
    import pandas as pd

    from evalsuite.merge import intent
    from evalsuite.merge.recipe import Expert, Recipe

    experts = tuple(Expert(name, name, (f"about {name}",)) for name in ("a", "b", "c"))
    recipe = Recipe(tmp_path / "r.yml", "a", experts)
    # 3 experts: starved below 1/(4 * 3) = 8.33% of a layer's assignments; collapsed above 90% top-1.
    counts = {  # layer -> (tokens per expert, top-1 picks per expert); 60 positions, top-2
        0: ([60, 7, 53], [55, 0, 5]),  # b: 7/120 = 5.8% starved; a: 55/60 = 91.7% of top-1 picks
        1: ([55, 11, 54], [50, 5, 5]),  # b: 11/120 = 9.2% fine; a: 50/60 = 83.3% fine
    }
    rows = [
        ("arc", layer, e, tokens[e], top1[e], float(tokens[e]))
        for layer, (tokens, top1) in counts.items()
        for e in range(3)
    ]
    frame = pd.DataFrame(rows, columns=["benchmark", "layer", "expert", "tokens", "top1_tokens", "weight_sum"])
    (tmp_path / "run").mkdir()
    frame.to_parquet(tmp_path / "run" / "router_stats.parquet")

    table = intent.intent_table(recipe, {"hidden": tmp_path / "run"})
    assert table.loc[(table["layer"] == 0) & (table["expert"] == 1), "share"].item() == pytest.approx(7 / 120)
    assert list(table.loc[table["starved"], ["layer", "expert"]].itertuples(index=False, name=None)) == [(0, 1)]
    notes = intent.warnings(table, 3)
    assert len(notes) == 2
    assert notes[0].startswith("hidden: expert 1 (b) is starved on arc (layer 0)")
    assert notes[1].startswith("hidden: the gate collapsed on arc (layer 0)")
    assert "| arc | 0 | 50.0 | 5.8 | 44.2 | collapsed starved: 1 |" in intent.to_markdown(recipe, table)


# --- bad recipes: one line, before any merge ---------------------------------------------------------


def _fails(workdir: Path, recipe: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    out = workdir / "not-written"
    # A small evaluation, should a bad recipe get through.
    args = ("--sample-data", "--limit", "1", "--benchmarks", "arc", "--no-progress", *extra)
    code = run_cli("merge", str(recipe), "--output-dir", str(out), *args)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("error: ") and "\n" not in err
    assert not out.exists()
    return err


@pytest.fixture
def bad_dir(workdir: Path, tmp_path: Path) -> Path:
    """A place for bad recipes beside the experts (symlinked), whose merge cache must stay empty."""
    (tmp_path / "experts").symlink_to(workdir / "experts")
    return tmp_path


def _no_merge_started(workdir: Path, recipe: Path) -> None:
    assert not list((workdir / "cache" / "merge").glob(f"*/{recipe.stem}-*"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_model": "./experts/no-such-base"}, "base_model: ./experts/no-such-base: no such model directory"),
        ({"base_model": "experts/no-such-base"}, "base_model: experts/no-such-base is not a model directory"),
        ({"gate_mode": "hiden"}, "unknown gate mode 'hiden'; use one of hidden, cheap_embed, random"),
        ({"experts_per_token": 4}, "experts_per_token: 4 must be a whole number from 1 to the number of experts (3)"),
        ({"shared_experts": []}, "unknown key shared_experts"),
    ],
)
def test_bad_recipe_keys_are_one_line_errors(
    workdir: Path, bad_dir: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, object], message: str
) -> None:
    recipe = _write_recipe(bad_dir / "bad.yml", **changes)
    assert message in _fails(workdir, recipe, capsys)
    _no_merge_started(workdir, recipe)


def test_unknown_expert_path_is_named(workdir: Path, bad_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _write_recipe(bad_dir / "bad.yml")
    text = recipe.read_text(encoding="utf-8").replace("experts/expert-math", "experts/expert-maths")
    recipe.write_text(text, encoding="utf-8")
    err = _fails(workdir, recipe, capsys)
    assert "experts[2] (experts/expert-maths): experts/expert-maths is not a model directory" in err


def test_unknown_gate_mode_option_is_a_usage_error(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = workdir / f"{RECIPE_NAME}.yml"
    assert "unknown gate mode 'hiddn'" in _fails(workdir, recipe, capsys, "--gate-modes", "hidden,hiddn")


def test_mismatched_architecture_is_refused(workdir: Path, bad_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalsuite.demo import build_tiny_model

    build_tiny_model(bad_dir / "narrow", arch="llama", seed=5, intermediate_size=64)
    recipe = _write_recipe(bad_dir / "bad.yml")
    recipe.write_text(recipe.read_text(encoding="utf-8").replace("experts/expert-math", "narrow"), encoding="utf-8")
    err = _fails(workdir, recipe, capsys)
    assert "experts[2] (narrow): intermediate_size is 64, the base model's 128" in err
    _no_merge_started(workdir, recipe)


def test_mismatched_tokenizer_is_refused(workdir: Path, bad_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = bad_dir / "other-tokenizer"
    shutil.copytree(workdir / "experts" / "expert-math", other)
    tokenizer = json.loads((other / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tokenizer["model"]["vocab"]
    vocab["!"], vocab['"'] = vocab['"'], vocab["!"]  # two tokens trade ids: another vocabulary, same size
    (other / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    recipe = _write_recipe(bad_dir / "bad.yml")
    text = recipe.read_text(encoding="utf-8").replace("experts/expert-math", "other-tokenizer")
    recipe.write_text(text, encoding="utf-8")
    assert "experts[2] (other-tokenizer): its tokenizer differs from the base model's" in _fails(
        workdir, recipe, capsys
    )


def test_identical_prompts_are_refused_for_prompted_gates(
    workdir: Path, bad_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = [{"source_model": f"experts/{name}", "positive_prompts": ["the same"]} for name in PROMPTS]
    recipe = _write_recipe(bad_dir / "bad.yml", experts=same)
    assert "every expert has the same prompts" in _fails(workdir, recipe, capsys)


def test_missing_mergekit_is_named_with_the_fix(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mergekit", None)  # what an environment without the extra looks like
    err = _fails(workdir, workdir / f"{RECIPE_NAME}.yml", capsys)
    assert "mergekit, which is not installed" in err and "evalsuite[merge]" in err


def test_a_mergekit_that_fails_to_import_is_one_line_with_the_fix(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mergekit.merge", None)  # installed, but one of its modules will not import
    err = _fails(workdir, workdir / f"{RECIPE_NAME}.yml", capsys)
    assert "mergekit is installed but mergekit.merge cannot be imported" in err and "evalsuite[merge]" in err


def test_only_mergekit_warnings_are_kept_with_a_merge() -> None:
    """mergekit-moe warns on the root logger (and its own); another library's warning during a merge is not
    reported as mergekit-moe's."""
    import logging

    from evalsuite.merge.build import _Warnings

    kept = _Warnings()
    logging.getLogger().addHandler(kept)
    try:
        logging.warning("layer 0 has degenerate routing parameters")
        logging.getLogger("mergekit.moe.common").warning("an expert's prompts are empty")
        logging.getLogger("huggingface_hub.file_download").warning("a download was slow")
    finally:
        logging.getLogger().removeHandler(kept)
    assert kept.messages == ["layer 0 has degenerate routing parameters", "an expert's prompts are empty"]
