"""oneDNN's matrix products in the fast backend's passes: the same results as the model's own forward
within float32 rounding, used only where a module's check agrees, and the model left as it was."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from evalsuite.engine.fast import onednn  # noqa: E402

# float32 rounding of a 32-wide model: a product of 32 terms rounded differently, well below any
# difference a wrong weight, gate or scale makes (order 1e-1 here).
TOLERANCE = 1e-5


def _mixtral() -> Any:
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(
        vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
    )  # fmt: skip
    torch.manual_seed(0)
    return MixtralForCausalLM(config).eval()


def _llama() -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def _ids() -> Any:
    return torch.randint(0, 96, (3, 11), generator=torch.Generator().manual_seed(1))


def _replaced(model: Any) -> list[Any]:
    return [m for m in model.modules() if "forward" in vars(m)]


def _close(got: Any, want: Any) -> bool:
    return float((got - want).abs().max()) <= TOLERANCE * float(want.abs().max())


@pytest.mark.parametrize("build", [_mixtral, _llama], ids=["mixtral", "llama"])
def test_logits_agree_with_the_models_own_and_every_linear_layer_is_replaced(build: Any) -> None:
    model = build()
    ids = _ids()
    with torch.no_grad():
        want = model(input_ids=ids).logits
        with onednn.installed(model):
            replaced = _replaced(model)
            got = model(input_ids=ids).logits
    linear = [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert set(map(id, linear)) <= set(map(id, replaced))
    assert _close(got, want)
    assert _replaced(model) == []  # the model is as it was


def test_experts_compute_as_transformers_own_forward() -> None:
    model = _mixtral()
    hidden = torch.randn((29, 32), generator=torch.Generator().manual_seed(2))
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
    assert _replaced(model) == []


def test_nothing_changes_in_reduced_precision() -> None:
    model = _mixtral().to(torch.bfloat16)
    assert not onednn.available(model)
    with onednn.installed(model):
        assert _replaced(model) == []
    assert onednn.describe(model) == "torch's default"


def test_plain_and_prepacked_weights_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _mixtral()
    ids = _ids()
    with torch.no_grad():
        want = model(input_ids=ids).logits
        assert onednn.describe(model) == "oneDNN, weights prepacked"  # a few KiB: a copy fits
        with onednn.installed(model):
            packed = model(input_ids=ids).logits
        monkeypatch.setattr(onednn, "PACK_MEMORY_SHARE", 0.0)  # no copy fits: the model's own weights
        assert onednn.describe(model) == "oneDNN"
        with onednn.installed(model):
            plain = model(input_ids=ids).logits
    assert _close(packed, want) and _close(plain, want)
