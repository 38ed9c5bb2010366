"""The "fast" backend: the same requests as the exact path, each shared token prefix computed once (the
contract it fulfils: evalsuite.engine.base).

tokenize (requests to token ids, as lm-eval's HF class makes them), trie (the prefix plan of a call),
schedule (the plan's forward passes and the caches each keeps, model-free), scorer (runs them: the
log-likelihoods), generate (batched greedy decoding), budget (tokens per batch), lm (the lm-eval `LM`
that ties them together).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from evalsuite.engine.base import BackendOptions, engine_name

if TYPE_CHECKING:
    from evalsuite.engine.fast.lm import FastLM
    from evalsuite.results import ModelInfo


@dataclass(frozen=True)
class FastBackend:
    """A loaded transformers model behind FastLM, which sends what it cannot share to lm-eval's HF class."""

    lm: FastLM
    info: ModelInfo
    module: Any  # the transformers model, for router statistics (FastLM publishes its real positions)
    router_counts: None = None

    @property
    def settings(self) -> dict[str, Any]:
        return self.lm.settings  # read after the run: the budget left after out-of-memory retries

    def close(self) -> None:
        """Nothing to release beyond what garbage collection frees."""


def load(opts: BackendOptions) -> FastBackend:
    """Load the model as the hf backend does and wrap it in FastLM."""
    from evalsuite.engine.fast.budget import default_max_batch_tokens
    from evalsuite.engine.fast.lm import FastLM
    from evalsuite.engine.hf import DEFAULT_MAX_LENGTH, load_model, make_lm

    model, tokenizer, info = load_model(opts)
    exact = make_lm(model, tokenizer, batch_size=1, max_length=info.max_length or DEFAULT_MAX_LENGTH)
    lm = FastLM(exact, opts.max_batch_tokens or default_max_batch_tokens(model))
    engine = engine_name(lm)
    # It batches by --max-batch-tokens (recorded in the engine settings), not by --batch-size.
    return FastBackend(lm=lm, info=replace(info, engine=engine, batch_size=None), module=model)
