"""oneDNN's matrix products in the fast backend's passes: the same results as the model's own forward
within float32 rounding, used only where a module's check agrees and its matrices are large enough,
the model left as it was, and greedy generations still the exact path's."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import GOLDEN

torch = pytest.importorskip("torch")

from evalsuite.engine.fast import onednn  # noqa: E402

TOKENIZER = GOLDEN / "models" / "tiny-moe"
# float32 rounding of a 256-wide model: sums of 256 products rounded in another order, far below what
# a wrong weight, gate or scale changes (order 1e-1 of the largest value).
TOLERANCE = 1e-5
# 256 wide with 512-wide experts: the experts' matrices and the output layer (vocabulary 2048) are large
# enough for oneDNN (at least MIN_WEIGHTS weights), the attention's 256×256 ones are not.
WIDTHS = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4, "num_key_value_heads": 2}


def _mixtral(vocab: int = 2048) -> Any:
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(vocab_size=vocab, num_hidden_layers=2, num_local_experts=4, num_experts_per_tok=2, **WIDTHS)
    torch.manual_seed(0)
    model = MixtralForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:  # a wide spread, so that the random model's next tokens vary
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return model


def _llama() -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=2048, num_hidden_layers=2, **WIDTHS)).eval()


def _ids() -> Any:
    return torch.randint(0, 2048, (3, 11), generator=torch.Generator().manual_seed(1))


def _replaced(model: Any) -> set[int]:
    return {id(m) for m in model.modules() if "forward" in vars(m)}


def _close(got: Any, want: Any) -> bool:
    return float((got - want).abs().max()) <= TOLERANCE * float(want.abs().max())


@pytest.mark.parametrize("build", [_mixtral, _llama], ids=["mixtral", "llama"])
def test_logits_agree_with_the_models_own_and_the_large_matrices_use_onednn(build: Any) -> None:
    model = build()
    ids = _ids()
    with torch.no_grad():
        want = model(input_ids=ids).logits
        with onednn.installed(model):
            replaced = _replaced(model)
            got = model(input_ids=ids).logits
    linear = [m for m in model.modules() if type(m) is torch.nn.Linear]
    large = {id(m) for m in linear if m.weight.numel() >= onednn.MIN_WEIGHTS}
    assert large and len(large) < len(linear)  # both kinds are there
    experts = {id(layer.mlp.experts) for layer in model.model.layers if hasattr(layer.mlp, "experts")}
    assert replaced == large | experts
    assert _close(got, want)
    assert _replaced(model) == set()  # the model is as it was


def test_experts_compute_as_transformers_own_forward() -> None:
    model = _mixtral()
    hidden = torch.randn((29, 256), generator=torch.Generator().manual_seed(2))
    for layer in model.model.layers:
        experts = layer.mlp.experts
        _, weights, index = layer.mlp.gate(hidden)  # the router's own picks, uneven across experts
        with torch.no_grad():
            want = experts(hidden, index, weights)
            with onednn.installed(model):
                assert "forward" in vars(experts)
                got = experts(hidden, index, weights)
        assert _close(got, want)


def test_a_module_whose_check_disagrees_keeps_its_own_forward() -> None:
    # Custom code with the expert module's attributes but another computation: the oneDNN forward would
    # compute the standard one, the check at install sees the difference, and the module keeps its own.
    model = _mixtral()
    experts = model.model.layers[0].mlp.experts
    own = type(experts).forward

    class Doubled(type(experts)):  # type: ignore[misc]
        def forward(self, *args: Any) -> Any:
            return 2 * own(self, *args)

    experts.__class__ = Doubled
    ids = _ids()
    with torch.no_grad():
        want = model(input_ids=ids).logits
        with onednn.installed(model):
            assert "forward" not in vars(experts)
            assert "forward" in vars(model.model.layers[1].mlp.experts)
            got = model(input_ids=ids).logits
    assert _close(got, want)


def test_the_model_is_restored_when_the_block_raises() -> None:
    model = _mixtral()
    with pytest.raises(RuntimeError, match="stop"), onednn.installed(model):
        assert _replaced(model)
        raise RuntimeError("stop")
    assert _replaced(model) == set()


def test_nothing_changes_in_reduced_precision_or_for_small_matrices() -> None:
    model = _mixtral().to(torch.bfloat16)
    assert not onednn.available(model)
    with onednn.installed(model):
        assert _replaced(model) == set()
    assert onednn.describe(model) == "torch's default"
    small = _mixtral(vocab=96)  # a small output layer: only the experts' matrices reach MIN_WEIGHTS
    assert {m for m, _ in onednn.targets(small)} == {layer.mlp.experts for layer in small.model.layers}


def test_plain_and_prepacked_weights_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _mixtral()
    ids = _ids()
    with torch.no_grad():
        want = model(input_ids=ids).logits
        assert onednn.describe(model) == "oneDNN, weights prepacked"  # a few MiB: a copy fits
        with onednn.installed(model):
            packed = model(input_ids=ids).logits
        monkeypatch.setattr(onednn, "PACK_MEMORY_SHARE", 0.0)  # no copy fits: the model's own weights
        assert onednn.describe(model) == "oneDNN"
        with onednn.installed(model):
            plain = model(input_ids=ids).logits
    assert _close(packed, want) and _close(plain, want)


def test_row_counts_run_at_few_sizes_and_give_the_unpadded_rows() -> None:
    sizes = {onednn._rows(n) for n in range(1, 8193)}
    assert len(sizes) <= 32 + 16 * 8  # every count to 32, then 16 per doubling up to 2^13
    assert all(0 <= onednn._rows(n) - n <= n / 16 for n in range(1, 8193))
    weight = torch.randn((512, 256), generator=torch.Generator().manual_seed(3))
    x = torch.randn((2, 45, 256), generator=torch.Generator().manual_seed(4))  # 90 rows, run as 92
    assert onednn._rows(90) == 92
    got = onednn._linear(x, weight)
    assert got.shape == (2, 45, 512) and _close(got, x @ weight.T)


def test_greedy_generations_are_the_exact_paths() -> None:
    # The exact path (lm-eval's HF class at batch size 1, MKL's products) against the fast backend
    # (batched, oneDNN's products) on a model whose experts and output layer go through oneDNN.
    from lm_eval.api.instance import Instance
    from transformers import AutoTokenizer

    from evalsuite.engine.fast.lm import FastLM
    from evalsuite.engine.hf import make_lm

    model = _mixtral()
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    exact = make_lm(model, tokenizer, batch_size=1, max_length=2048)
    fast = FastLM(make_lm(model, tokenizer, batch_size=1, max_length=2048), 4096)
    assert fast.settings["matrix_products"] == "oneDNN, weights prepacked"
    prompts = ["Question: What do bees make?\nAnswer:", "Once upon a time", "The cat sat on the", "2 + 2 ="]
    instances = [
        Instance(request_type="generate_until", doc={}, arguments=(p, {"until": ["\n\n"], "max_gen_toks": 32}), idx=0)
        for p in prompts
    ]
    want = exact.generate_until(instances, disable_tqdm=True)
    assert all(want) and len(set(want)) == len(want)  # texts to compare: none empty, all different
    assert fast.generate_until(instances, disable_tqdm=True) == want
