"""Router statistics on real tiny models: Mixtrals built here from configs (some with routing set by
hand, so that every count is known in advance), the reference tiny MoE and the dense tiny Llama."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import GOLDEN, run_cli
from evalsuite.errors import RunDirError
from evalsuite.moe import plots as router_plots
from evalsuite.moe import positions as real_positions
from evalsuite.moe import recorder as router
from evalsuite.moe import stats as router_stats

TINY_MOE = GOLDEN / "models" / "tiny-moe"
EXPERTS, TOP_K, HIDDEN = 4, 2, 32


def _mixtral(seed: int, vocab: int = 64, **overrides: Any) -> Any:
    """A random 2-layer Mixtral (4 experts, top-2); weights drawn from a local generator."""
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=EXPERTS,
        num_experts_per_tok=TOP_K,
        max_position_embeddings=4096,
        router_jitter_noise=0.0,
        tie_word_embeddings=False,
        **overrides,
    )
    model = MixtralForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:  # norms keep their weight of 1
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    return model


def _route_layer0_to_experts_2_and_3(model: Any, seed: int) -> None:
    """Layer 0's router sees the same vector at every position, with logits (0, 0, 1, 2): every
    position picks experts 3 (top-1) and 2, with weights e/(1+e) and 1/(1+e) after renormalising.

    How: each token embedding is e_0 + v with v orthogonal to e_0 and |v| = 1, so every embedding has
    the same norm; layer 0's attention output is zeroed, so the router's input is RMSNorm(embedding),
    and that norm's weight keeps only coordinate 0, scaled to exactly 1."""
    import torch

    emb = model.model.embed_tokens.weight
    layer = model.model.layers[0]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        v = torch.randn(emb.shape, generator=gen)
        v[:, 0] = 0.0
        emb.copy_(v / v.norm(dim=1, keepdim=True))
        emb[:, 0] = 1.0
        layer.self_attn.o_proj.weight.zero_()
        eps = layer.post_attention_layernorm.variance_epsilon
        norm = layer.post_attention_layernorm.weight
        norm.zero_()
        norm[0] = math.sqrt((1.0 + 1.0) / HIDDEN + eps)  # 1 / (x_0 / rms(x)) with x_0 = 1, |x|^2 = 2
        gate = layer.mlp.gate.weight
        gate.zero_()
        gate[2, 0], gate[3, 0] = 1.0, 2.0


def _counts(frame: Any, layer: int, column: str, benchmark: str | None = None) -> list[float]:
    rows = frame[frame["layer"] == layer]
    if benchmark is not None:
        rows = rows[rows["benchmark"] == benchmark]
    return rows.groupby("expert")[column].sum().reindex(range(EXPERTS), fill_value=0).tolist()


# --- detection -----------------------------------------------------------------------------------


def test_mixtral_routers_are_found_one_per_layer() -> None:
    model = _mixtral(seed=0)
    assert router.is_moe(model)
    found = router.find_routers(model)
    assert [r.layer for r in found] == [0, 1]
    assert all(r.module is model.model.layers[r.layer].mlp.gate for r in found)


def tiny_llama_config():
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2,
    )  # fmt: skip


def test_dense_model_is_not_moe() -> None:
    from transformers import LlamaForCausalLM

    config = tiny_llama_config()
    assert not router.is_moe(LlamaForCausalLM(config))


def test_experts_in_the_config_without_router_modules_warn_and_are_skipped() -> None:
    from transformers import LlamaForCausalLM

    config = tiny_llama_config()
    config.num_local_experts = 8  # declared, but the modules are dense
    with pytest.warns(RuntimeWarning, match="no router module"):
        assert not router.is_moe(LlamaForCausalLM(config))


def _structural_moe(layers: int = 3) -> Any:
    """An MoE that declares no router class: each block has a plain `gate` (a Linear giving logits)
    beside its `experts`, as older and remote-code MoE models do."""
    import torch

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate = torch.nn.Linear(HIDDEN, EXPERTS, bias=False)
            self.experts = torch.nn.ModuleList(torch.nn.Linear(HIDDEN, HIDDEN) for _ in range(EXPERTS))

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = SimpleNamespace(num_local_experts=EXPERTS, num_experts_per_tok=TOP_K)
            self.layers = torch.nn.ModuleList(Block() for _ in range(layers))

        def forward(self, x: Any) -> Any:
            for block in self.layers:
                block.gate(x)  # only the routing matters here
            return x

    return Net()


def test_routers_are_found_by_structure_when_the_model_declares_none() -> None:
    model = _structural_moe()
    assert router.is_moe(model)
    assert [(r.name, r.layer) for r in router.find_routers(model)] == [(f"layers.{i}.gate", i) for i in range(3)]


def test_a_router_that_returns_only_logits_is_routed_as_mixtral_does() -> None:
    import torch

    model = _structural_moe(layers=1)
    x = torch.randn(2, 5, HIDDEN, generator=torch.Generator().manual_seed(9))
    recorder = router.RouterRecorder(model)
    with torch.no_grad(), recorder.track("bench"):
        model(x)
    with torch.no_grad():
        probs = torch.softmax(model.layers[0].gate(x).reshape(-1, EXPERTS).double(), dim=-1)
    top, picked = torch.topk(probs, TOP_K, dim=-1)
    top = top / top.sum(dim=-1, keepdim=True)
    frame = recorder.frame()
    assert _counts(frame, 0, "tokens") == torch.bincount(picked.reshape(-1), minlength=EXPERTS).tolist()
    assert _counts(frame, 0, "top1_tokens") == torch.bincount(picked[:, 0], minlength=EXPERTS).tolist()
    weights = torch.zeros(EXPERTS, dtype=torch.float64).index_add_(0, picked.reshape(-1), top.reshape(-1))
    assert _counts(frame, 0, "weight_sum") == pytest.approx(weights.tolist(), abs=1e-5)


# --- counting ------------------------------------------------------------------------------------


def test_hand_set_routing_gives_exact_counts_and_weights_with_published_padding_excluded() -> None:
    import torch

    model = _mixtral(seed=1)
    _route_layer0_to_experts_2_and_3(model, seed=2)
    ids = torch.arange(1, 22).reshape(3, 7)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, :2] = 0  # left padding, as in batched generation
    mask[2, :5] = 0
    positions = 7 + 5 + 2
    recorder = router.RouterRecorder(model)
    with torch.no_grad(), recorder.track("bench"), real_positions.publish(mask.bool()):
        model(input_ids=ids, attention_mask=mask)
    frame = recorder.frame()
    e = math.e
    assert _counts(frame, 0, "tokens") == [0, 0, positions, positions]
    assert _counts(frame, 0, "top1_tokens") == [0, 0, 0, positions]
    assert _counts(frame, 0, "weight_sum") == pytest.approx([0, 0, positions / (1 + e), positions * e / (1 + e)])
    assert sum(_counts(frame, 1, "tokens")) == positions * TOP_K

    layer0 = router_stats.summarize(frame)["benchmarks"]["bench"]["layers"][0]
    assert layer0["tokens"] == positions
    assert layer0["entropy"] == pytest.approx(math.log(2) / math.log(EXPERTS))  # two experts share evenly
    assert layer0["cv"] == pytest.approx(1.0)  # loads (0, 0, n, n): std n/2 over mean n/2
    assert (layer0["most_used"], layer0["least_used"], layer0["unused"]) == (2, 0, [0, 1])
    assert layer0["top1_max_share"] == 1.0 and layer0["collapsed"]


def test_counts_and_weights_match_the_models_own_router_logits() -> None:
    import torch

    model = _mixtral(seed=3)
    gen = torch.Generator().manual_seed(4)
    ids = torch.randint(1, 64, (4, 9), generator=gen)
    mask = torch.ones(4, 9, dtype=torch.long)
    mask[0, :3] = 0
    mask[3, :8] = 0
    recorder = router.RouterRecorder(model)
    with torch.no_grad(), recorder.track("bench"), real_positions.publish(mask.bool()):
        model(input_ids=ids, attention_mask=mask)
    with torch.no_grad():  # the reference: transformers' own record of each layer's router logits
        logits = model(input_ids=ids, attention_mask=mask, output_router_logits=True).router_logits
    frame = recorder.frame()
    real = mask.reshape(-1).bool()
    for layer, layer_logits in enumerate(logits):
        probs = torch.softmax(layer_logits[real].double(), dim=-1)
        top, picked = torch.topk(probs, TOP_K, dim=-1)
        top = top / top.sum(dim=-1, keepdim=True)  # Mixtral renormalises over the k picks
        tokens = torch.bincount(picked.reshape(-1), minlength=EXPERTS).tolist()
        top1 = torch.bincount(picked[:, 0], minlength=EXPERTS).tolist()
        weights = torch.zeros(EXPERTS, dtype=torch.float64).index_add_(0, picked.reshape(-1), top.reshape(-1))
        assert _counts(frame, layer, "tokens") == tokens
        assert _counts(frame, layer, "top1_tokens") == top1
        assert _counts(frame, layer, "weight_sum") == pytest.approx(weights.tolist(), abs=1e-5)
        assert sum(tokens) == int(real.sum()) * TOP_K


def test_with_nothing_published_every_position_counts() -> None:
    # A backend that does not pad publishes nothing: the recorder reads no attention mask, no pad id.
    import torch

    model = _mixtral(seed=3)
    ids = torch.tensor([[0, 0, 5, 6], [0, 7, 8, 9]])
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    recorder = router.RouterRecorder(model)
    with torch.no_grad(), recorder.track("bench"):
        model(input_ids=ids, attention_mask=mask)
    for layer in range(2):
        assert sum(_counts(recorder.frame(), layer, "top1_tokens")) == 2 * 4


def test_published_positions_that_do_not_fit_the_pass_warn_and_count_every_position() -> None:
    import torch

    model = _mixtral(seed=3)
    recorder = router.RouterRecorder(model)
    wrong = real_positions.publish(torch.ones(1, 3, dtype=torch.bool))  # 3 positions for a pass of 2 x 4
    with torch.no_grad(), pytest.warns(RuntimeWarning, match="do not fit"), recorder.track("bench"), wrong:
        model(input_ids=torch.ones(2, 4, dtype=torch.long))
    assert sum(_counts(recorder.frame(), 0, "top1_tokens")) == 2 * 4


def test_positions_with_nan_activations_are_not_counted_as_routed() -> None:
    import torch

    model = _mixtral(seed=3)
    poisoned = 7
    with torch.no_grad():
        model.model.embed_tokens.weight[poisoned] = torch.nan
    ids = torch.tensor([[1, 2, 3, 4], [poisoned, 5, 6, 8]])  # row 1 is NaN throughout
    recorder = router.RouterRecorder(model)
    with torch.no_grad(), pytest.warns(RuntimeWarning, match="non-finite"), recorder.track("bench"):
        model(input_ids=ids)
    frame = recorder.frame()
    finite_positions = 4  # row 0's
    for layer in range(2):
        assert sum(_counts(frame, layer, "tokens")) == finite_positions * TOP_K
        assert sum(_counts(frame, layer, "top1_tokens")) == finite_positions
        assert math.isfinite(sum(_counts(frame, layer, "weight_sum")))


def test_nothing_is_counted_outside_a_benchmark_and_close_removes_the_hooks() -> None:
    import torch

    model = _mixtral(seed=5)
    recorder = router.RouterRecorder(model)
    with torch.no_grad():
        model(input_ids=torch.ones(1, 4, dtype=torch.long))
    assert recorder.frame().empty
    recorder.close()
    with torch.no_grad(), recorder.track("after-close"):
        model(input_ids=torch.ones(1, 4, dtype=torch.long))
    assert recorder.frame()["tokens"].sum() == 0


def _successor_model() -> Any:
    """A Mixtral whose greedy next token is always the current token + 1: embeddings are one-hot,
    attention and expert outputs are zero, and the LM head maps token t to t + 1. Routing still runs."""
    import torch

    model = _mixtral(seed=6, vocab=HIDDEN)
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(HIDDEN))
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.experts.down_proj.zero_()
        model.lm_head.weight.copy_(torch.roll(torch.eye(HIDDEN), shifts=1, dims=0))
    return model


def test_batched_generation_counts_each_fed_position_once_and_not_after_a_sequence_stops() -> None:
    # The hf backend's generate publishes the prompt's real positions, then each step's running rows.
    import torch

    from evalsuite.engine import hflm_positions

    model = _successor_model()
    eos, pad = 20, 0
    prompts = [[1, 2, 12], [5, 17]]  # generate 13..20 (8 tokens) and 18..20 (3 tokens)

    def generate(batch: list[list[int]]) -> None:
        width = max(map(len, batch))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
        with hflm_positions.generation_positions(ids, mask) as decoding:
            model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=12,
                eos_token_id=eos,
                pad_token_id=pad,
                do_sample=False,
                custom_generate=decoding,
            )

    recorder = router.RouterRecorder(model)
    with recorder.track("together"):
        generate(prompts)
    with recorder.track("apart"):
        for prompt in prompts:
            generate([prompt])
    frame = recorder.frame()
    # The prompt once, then one position per generated token but the last (it is never fed back).
    positions = (3 + 8 - 1) + (2 + 3 - 1)
    for layer in (0, 1):
        together = _counts(frame, layer, "tokens", "together")
        assert together == _counts(frame, layer, "tokens", "apart")
        assert sum(together) == positions * TOP_K


# --- evalsuite run -------------------------------------------------------------------------------


def _positions_fed(run_dir: Path, benchmark: str, tokenizer: Any) -> int:
    """Token positions lm-eval feeds for a loglikelihood benchmark, from the recorded requests: each
    request's input is (context + continuation tokens)[:-1], encoded as lm-eval does (trailing spaces
    of the context move to the continuation); identical inputs in one call are computed once."""
    inputs = set()
    for line in (run_dir / "samples" / f"{benchmark}.jsonl").read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        for req in [*doc.get("mc1_requests", []), *doc["requests"]]:
            context, continuation = req["context"], req["continuation"]
            spaces = len(context) - len(context.rstrip())
            if spaces:
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            whole = tokenizer.encode(context + continuation, add_special_tokens=False)
            ctx = tokenizer.encode(context, add_special_tokens=False)
            inputs.add(tuple((ctx + whole[len(ctx) :])[:-1]))
    return sum(map(len, inputs))


def _run(model_dir: Path, out: Path, *extra: str) -> Path:
    code = run_cli(
        "run",
        "--model",
        str(model_dir),
        "--data-dir",
        str(GOLDEN / "data"),
        "--limit",
        "2",
        "--benchmarks",
        "arc,truthfulqa",
        "--output-dir",
        str(out),
        "--no-progress",
        "--backend",
        "hf",  # these count positions as lm-eval's HF class feeds them; the fast backend: test_engine_fast
        *extra,
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def moe_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    base = tmp_path_factory.mktemp("router-runs")
    return {bs: _run(TINY_MOE, base / f"bs{bs}", "--batch-size", str(bs)) for bs in (1, 4, 8)}


@pytest.mark.slow
def test_run_counts_every_fed_position_top_k_times_in_every_layer(moe_runs: dict[int, Path]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_MOE)
    frame = router_stats.load_router_stats(moe_runs[1])
    assert list(dict.fromkeys(frame["benchmark"])) == ["arc", "truthfulqa"]
    for benchmark in ("arc", "truthfulqa"):
        positions = _positions_fed(moe_runs[1], benchmark, tokenizer)
        for layer in (0, 1):
            assert sum(_counts(frame, layer, "tokens", benchmark)) == positions * TOP_K
            assert sum(_counts(frame, layer, "top1_tokens", benchmark)) == positions
            # Mixtral's k weights of a position sum to 1
            assert sum(_counts(frame, layer, "weight_sum", benchmark)) == pytest.approx(positions, rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [4, 8])
def test_larger_batch_sizes_count_the_same_tokens_as_batch_size_1(moe_runs: dict[int, Path], batch_size: int) -> None:
    one, more = (router_stats.load_router_stats(moe_runs[bs]) for bs in (1, batch_size))
    assert more[["benchmark", "layer", "expert", "tokens", "top1_tokens"]].equals(
        one[["benchmark", "layer", "expert", "tokens", "top1_tokens"]]
    )
    assert more["weight_sum"].to_numpy() == pytest.approx(one["weight_sum"].to_numpy(), abs=1e-3)


@pytest.mark.slow
def test_results_json_holds_the_summary_of_the_parquet(moe_runs: dict[int, Path]) -> None:
    results = json.loads((moe_runs[1] / "results.json").read_text(encoding="utf-8"))
    frame = router_stats.load_router_stats(moe_runs[1])
    assert results["router"] == {"file": router_stats.ROUTER_FILE, **router_stats.summarize(frame)}
    assert results["router"]["top_k"] == TOP_K and results["router"]["num_experts"] == EXPERTS
    assert results["router"]["collapse_threshold"] == router_stats.COLLAPSE_THRESHOLD


@pytest.mark.slow
def test_hand_routed_model_through_a_batched_run(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    ref = AutoConfig.from_pretrained(TINY_MOE)
    model = _mixtral(
        seed=7,
        vocab=ref.vocab_size,
        bos_token_id=ref.bos_token_id,
        eos_token_id=ref.eos_token_id,
        pad_token_id=ref.pad_token_id,
    )
    _route_layer0_to_experts_2_and_3(model, seed=8)
    model_dir = tmp_path / "hand-routed"
    model.save_pretrained(model_dir)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY_MOE / name, model_dir / name)
    run_dir = _run(model_dir, tmp_path / "run", "--batch-size", "4")

    frame = router_stats.load_router_stats(run_dir)
    summary = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["router"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for benchmark in ("arc", "truthfulqa"):
        n = _positions_fed(run_dir, benchmark, tokenizer)
        assert _counts(frame, 0, "tokens", benchmark) == [0, 0, n, n]
        assert _counts(frame, 0, "top1_tokens", benchmark) == [0, 0, 0, n]
        assert _counts(frame, 0, "weight_sum", benchmark) == pytest.approx(
            [0, 0, n / (1 + math.e), n / (1 + 1 / math.e)]
        )
        layers = summary["benchmarks"][benchmark]["layers"]
        assert layers[0]["collapsed"] and layers[0]["most_used"] == 2 and layers[0]["unused"] == [0, 1]
        assert layers[1]["tokens"] == n


@pytest.mark.slow
def test_no_router_stats_flag_writes_none(tmp_path: Path) -> None:
    run_dir = _run(TINY_MOE, tmp_path / "run", "--no-router-stats")
    assert not (run_dir / router_stats.ROUTER_FILE).exists()
    assert "router" not in json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_dense_model_runs_without_router_statistics(tiny_dense_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert not (tiny_dense_run / router_stats.ROUTER_FILE).exists()
    assert "router" not in json.loads((tiny_dense_run / "results.json").read_text(encoding="utf-8"))
    assert router_plots.plot_run(tiny_dense_run, tiny_dense_run.parent / "plots") == []
    with pytest.raises(RunDirError, match="no router statistics"):
        router_stats.load_router_stats(tiny_dense_run)
    assert run_cli("router-stats", str(tiny_dense_run)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


# --- reading, command line, plots ----------------------------------------------------------------


def test_summary_figures_from_first_principles() -> None:
    import pandas as pd

    loads = {"even": [5, 5, 5, 5], "skewed": [10, 6, 4, 0]}
    top1 = {"even": [3, 3, 2, 2], "skewed": [9, 1, 0, 0]}  # 10 positions each, k = 2
    frame = pd.DataFrame(
        [(b, 0, e, loads[b][e], top1[b][e], loads[b][e] / 2) for b in loads for e in range(EXPERTS)],
        columns=list(router_stats.COLUMNS),
    )
    summary = router_stats.summarize(frame)
    assert (summary["top_k"], summary["num_experts"]) == (2, EXPERTS)
    even = summary["benchmarks"]["even"]["layers"][0]
    assert (even["entropy"], even["cv"], even["collapsed"], even["tokens"]) == (1.0, 0.0, False, 10)
    skewed = summary["benchmarks"]["skewed"]["layers"][0]
    shares = [10 / 20, 6 / 20, 4 / 20]
    assert skewed["entropy"] == pytest.approx(-sum(p * math.log(p) for p in shares) / math.log(4), abs=1e-6)
    mean = 20 / 4
    assert skewed["cv"] == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in [10, 6, 4, 0]) / 4) / mean, abs=1e-6)
    assert (skewed["most_used"], skewed["least_used"], skewed["unused"]) == (0, 3, [3])
    # 9 of 10 top-1 picks is exactly the threshold, not more than it
    assert skewed["top1_max_share"] == 0.9 and not skewed["collapsed"]


@pytest.mark.slow
def test_router_stats_command_prints_the_summary(moe_runs: dict[int, Path], capsys: pytest.CaptureFixture) -> None:
    assert run_cli("router-stats", str(moe_runs[1]), "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == router_stats.summarize(router_stats.load_router_stats(moe_runs[1]))
    assert run_cli("router-stats", str(moe_runs[1])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{EXPERTS} experts, top-{TOP_K}")
    assert sum(line.split()[:1] in (["arc"], ["truthfulqa"]) for line in lines) == 2 * 2  # benchmark x layer


def test_router_stats_command_rejects_a_missing_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli("router-stats", str(tmp_path / "nope")) == 1
    assert "no such run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_plot_run_writes_a_heatmap_per_benchmark_and_a_contrast(moe_runs: dict[int, Path], tmp_path: Path) -> None:
    import matplotlib.image

    paths = router_plots.plot_run(moe_runs[1], tmp_path / "plots")
    assert [p.name for p in paths] == ["router_arc.png", "router_truthfulqa.png", "router_benchmarks.png"]
    for path in paths:
        height, width, _ = matplotlib.image.imread(path).shape
        assert 200 < height < 2000 and 400 < width < 3000
