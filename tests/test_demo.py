"""The embedded demo: its shipped data, its tiny-model builder, its cache, and a full `run --demo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from evalsuite.benchmarks.table import BENCHMARKS, get_spec
from evalsuite.demo import DEMO_DATA_DIR, DEMO_SEED, build_tiny_model, demo_model_dir, run_options

SIX = {"arc", "hellaswag", "mmlu", "truthfulqa", "winogrande", "gsm8k"}


def split_files() -> list[Path]:
    """Every file the benchmark table reads, relative to a data dir."""
    return [
        Path(spec.dataset) / config / f"{split}.parquet"
        for spec in BENCHMARKS
        for config in spec.configs
        for split in spec.splits()
    ]


def rows(name: str, split: str, config: str | None = None) -> list[dict[str, Any]]:
    spec = get_spec(name)
    path = DEMO_DATA_DIR / spec.dataset / (config or spec.configs[0]) / f"{split}.parquet"
    return pq.read_table(path).to_pylist()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {
        "a": build_tiny_model(root / "a"),
        "a_again": build_tiny_model(root / "a_again"),
        "other_seed": build_tiny_model(root / "other_seed", seed=DEMO_SEED + 1),
    }


def weights(model_dir: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


# --- shipped data ---------------------------------------------------------------------------------


def test_demo_data_has_the_hub_schemas_of_the_reference_data(golden_dir: Path) -> None:
    for rel in split_files():
        ours = pq.read_schema(DEMO_DATA_DIR / rel)
        hub = pq.read_schema(golden_dir / "data" / rel)
        assert [(f.name, f.type) for f in ours] == [(f.name, f.type) for f in hub], rel


def test_demo_data_covers_every_split_the_table_reads_and_all_57_mmlu_subjects(golden_dir: Path) -> None:
    missing = [str(rel) for rel in split_files() if not (DEMO_DATA_DIR / rel).is_file()]
    assert missing == []
    subjects = {p.name for p in (golden_dir / "data" / "cais" / "mmlu").iterdir()}
    assert len(subjects) == 57
    assert {p.name for p in (DEMO_DATA_DIR / "cais" / "mmlu").iterdir()} == subjects


def test_fewshot_splits_hold_at_least_the_shots_v1_draws() -> None:
    assert len(rows("arc", "train")) >= 25
    assert len(rows("hellaswag", "train")) >= 10
    assert len(rows("winogrande", "train")) >= 5
    assert len(rows("gsm8k", "train")) >= 5
    for subject in get_spec("mmlu").configs:
        assert len(rows("mmlu", "dev", subject)) == 5, subject
        assert all(r["subject"] == subject for r in rows("mmlu", "test", subject))


def test_demo_data_contains_the_awkward_cases() -> None:
    arc = rows("arc", "test")
    assert any(r["answerKey"] in {"1", "2", "3", "4"} for r in arc)
    assert {len(r["choices"]["text"]) for r in arc} >= {3, 4, 5}
    assert all(r["answerKey"] in r["choices"]["label"] for r in arc + rows("arc", "train"))

    hellaswag = rows("hellaswag", "validation")
    assert any("[title]" in r["ctx_a"] and "[header]" in r["ctx_a"] for r in hellaswag)
    assert any(r["ctx_b"][:1].islower() and any(w.isupper() for w in r["ctx_b"].split()) for r in hellaswag)
    assert all(r["label"] in {"0", "1", "2", "3"} for r in hellaswag)

    mmlu = [r for s in get_spec("mmlu").configs for r in rows("mmlu", "test", s)]
    assert any(c != c.rstrip() for r in mmlu for c in r["choices"])

    # v1's mc2 counts everything from the first 0 as false, so a 1 after a 0 must occur.
    labels = [r["mc2_targets"]["labels"] for r in rows("truthfulqa", "validation")]
    assert any(lab[lab.index(0) :].count(1) for lab in labels)
    assert all(r["mc1_targets"]["labels"][0] == 1 for r in rows("truthfulqa", "validation"))

    gsm8k = rows("gsm8k", "test") + rows("gsm8k", "train")
    finals = [r["answer"].rsplit("#### ", 1)[1] for r in gsm8k]
    assert any("," in f for f in finals) and any(f.startswith("-") for f in finals)
    assert all("<<" in r["answer"] for r in gsm8k)
    assert any(":" in r["answer"].rsplit("#### ", 1)[0] for r in gsm8k)

    winogrande = rows("winogrande", "validation")
    assert all(r["sentence"].count("_") == 1 and r["answer"] in {"1", "2"} for r in winogrande)
    assert any(r["sentence"].endswith("_.") for r in winogrande)


def test_shipped_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    from evalsuite.demo import generate

    generate.main(["--out", str(tmp_path)])
    for rel in split_files():
        assert pq.read_table(tmp_path / "data" / rel).equals(pq.read_table(DEMO_DATA_DIR / rel)), rel
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "tokenizer" / name).read_bytes() == (generate.TOKENIZER_DIR / name).read_bytes()


# --- tiny models ----------------------------------------------------------------------------------


def test_build_tiny_model_is_deterministic_for_a_seed_and_differs_across_seeds(
    tiny_models: dict[str, Path],
) -> None:
    import torch

    a, again, other = (weights(tiny_models[k]) for k in ("a", "a_again", "other_seed"))
    assert a.keys() == again.keys() == other.keys()
    assert all(torch.equal(a[k], again[k]) for k in a)
    assert not all(torch.equal(a[k], other[k]) for k in a)
    assert all(t.dtype == torch.float32 for t in a.values())


def test_build_tiny_model_leaves_the_global_torch_rng_alone(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    build_tiny_model(tmp_path / "m")
    assert torch.equal(torch.rand(3), expected)


def test_tiny_mixtral_config_is_a_4_expert_top_2_moe_with_4096_positions(
    tiny_models: dict[str, Path],
) -> None:
    config = json.loads((tiny_models["a"] / "config.json").read_text())
    assert config["architectures"] == ["MixtralForCausalLM"]
    assert (config["num_local_experts"], config["num_experts_per_tok"]) == (4, 2)
    assert config["router_jitter_noise"] == 0.0
    assert config["max_position_embeddings"] == 4096
    assert config["dtype"] == "float32"
    tokenizer = json.loads((tiny_models["a"] / "tokenizer.json").read_text())
    assert config["vocab_size"] == len(tokenizer["model"]["vocab"])
    for name in ("generation_config.json", "tokenizer_config.json"):
        assert (tiny_models["a"] / name).is_file()


def test_build_tiny_model_makes_a_dense_llama_and_applies_overrides(tmp_path: Path) -> None:
    import transformers

    llama = transformers.AutoConfig.from_pretrained(build_tiny_model(tmp_path / "llama", arch="llama"))
    assert llama.architectures == ["LlamaForCausalLM"]
    assert not hasattr(llama, "num_local_experts")
    moe = transformers.AutoConfig.from_pretrained(build_tiny_model(tmp_path / "moe8", num_local_experts=8))
    assert moe.num_local_experts == 8


def test_tokenizer_adds_bos_by_default_and_evalsuite_does_not(tiny_models: dict[str, Path]) -> None:
    import transformers

    from conftest import load_backend_of

    text = "Question: Which tool should be used?\nAnswer:"
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_models["a"])
    bos = tokenizer.convert_tokens_to_ids("<s>")
    plain = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer(text).input_ids == [bos, *plain]  # so a harness adding BOS gets other numbers

    backend = load_backend_of(model=str(tiny_models["a"]), backend="hf", device="cpu")
    assert backend.lm.tok_encode(text) == plain


# --- the demo model cache and the run options ---------------------------------------------------------


def test_demo_model_dir_builds_once_into_the_cache_and_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALSUITE_CACHE", str(tmp_path))
    first = demo_model_dir()
    assert first.name == "demo-tiny-moe" and first.is_relative_to(tmp_path)
    assert (first / "config.json").is_file() and (first / "model.safetensors").is_file()
    assert [p.name for p in first.parent.iterdir()] == ["demo-tiny-moe"]  # no temp build left over
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert demo_model_dir() == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_run_options_point_at_the_demo_model_and_data_and_mark_a_smoke_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalsuite.pipeline.rundir import default_output_dir

    monkeypatch.setenv("EVALSUITE_CACHE", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # leave this process's torch threads as they are
    opts = run_options(benchmarks=("arc",), limit=2, progress=False)
    assert Path(opts.model) == demo_model_dir()
    assert Path(opts.data_dir or "") == DEMO_DATA_DIR
    assert opts.smoke and opts.extra_seeds == (("demo_model", DEMO_SEED),)
    assert (opts.benchmarks, opts.limit, opts.progress) == (("arc",), 2, False)
    assert default_output_dir(opts.model).parent == Path("results") / "demo-tiny-moe"
    assert run_options(data_dir=str(tmp_path)).data_dir == str(tmp_path)


# --- end to end -----------------------------------------------------------------------------------


@pytest.fixture
def torch_threads() -> Any:
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # the demo may put torch on one thread; later tests get it back


@pytest.mark.slow
@pytest.mark.usefixtures("torch_threads")
def test_run_demo_writes_a_complete_smoke_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalsuite.cli.main import main

    monkeypatch.setenv("EVALSUITE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["run", "--demo", "--output-dir", str(out), "--no-progress"]) == 0

    results = json.loads((out / "results.json").read_text())
    assert set(results["benchmarks"]) == SIX
    assert results["provenance"]["smoke"] is True
    assert results["provenance"]["seeds"]["demo_model"] == DEMO_SEED
    # The demo runs torch on one thread unless told otherwise; the machine record says so.
    machine = results["provenance"]["machine"]
    assert machine["torch_threads"] == 1 and machine["cpu"] and machine["cpu_count"] >= 1
    assert machine["torch_threads_rule"] in ("OMP_NUM_THREADS", "requested (--threads, or the demo's one thread)")
    assert "numpy" in results["provenance"]["packages"]
    for spec in BENCHMARKS:
        n_docs = sum(len(rows(spec.name, spec.eval_split, c)) for c in spec.configs)
        lines = (out / "samples" / f"{spec.name}.jsonl").read_text().splitlines()
        assert len(lines) == n_docs, spec.name
    assert (out / "model-index.yaml").is_file()
    # said for what it is: not "a subset of the documents" (the demo's data is all synthetic)
    assert "Demo run: a tiny random model on synthetic data" in (out / "metrics.md").read_text()
