"""The "fast" backend: the same requests as the exact path, each shared token prefix computed once (the
contract it fulfils: evalsuite.engine.base).

evalsuite.engine.tokenize (requests to token ids, as lm-eval's HF class makes them), trie (the prefix plan of a call),
schedule (the plan's forward passes and the caches each keeps, model-free), scorer (runs them: the
log-likelihoods), generate (batched greedy decoding), budget (tokens per batch), lm (the lm-eval `LM`
that ties them together).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from evalsuite.engine.base import BackendOptions, Calls, CostMeter, engine_name
from evalsuite.engine.hf import HFBackend

if TYPE_CHECKING:
    from evalsuite.engine.fast.lm import FastLM
    from evalsuite.engine.model_files import ModelFiles

# Prefixes are shared within a call: calls large enough that a benchmark's shots and preambles are forwarded
# about once, and generations many enough to fill the decoding steps. An answer's last bits depend on the
# call's other requests (they share its passes): a resumed run sends a partly answered call whole again,
# so that its plan is the uninterrupted run's.
FAST_CALLS = Calls(per_call={"loglikelihood": 4096, "generate_until": 256}, whole=True)


@dataclass
class FastBackend(HFBackend):
    """A loaded transformers model behind FastLM, which sends what it cannot share to lm-eval's HF class;
    FastLM publishes the real positions of its passes for the router counter."""

    lm: FastLM
    calls: Calls = FAST_CALLS

    @property
    def settings(self) -> dict[str, Any]:
        return self.lm.settings  # read after the run: the budget left after out-of-memory retries

    def meter(self) -> CostMeter | None:
        self.lm.keep_inputs()
        return self.lm


def load(opts: BackendOptions, files: ModelFiles) -> FastBackend:
    """Load the model as the hf backend does and wrap it in FastLM."""
    from evalsuite.engine.fast.budget import default_max_batch_tokens
    from evalsuite.engine.fast.lm import FastLM
    from evalsuite.engine.hf import load_model, make_lm

    model, info = load_model(opts, files)
    exact = make_lm(model, files.tokenizer, batch_size=1, max_length=files.max_length)
    lm = FastLM(exact, opts.max_batch_tokens or default_max_batch_tokens(model))
    # It batches by --max-batch-tokens (recorded in the engine settings), not by --batch-size.
    return FastBackend(lm=lm, info=replace(info, engine=engine_name(lm), batch_size=None), module=model)
