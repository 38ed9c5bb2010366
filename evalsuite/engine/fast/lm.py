"""`FastLM`: lm-eval's `LM` contract answered with each shared prefix computed once.

Same requests and tokens as the exact path (lm-eval's HF class at batch size 1); only float rounding
differs (batched matrix products, by oneDNN on CPU in float32, a cached prefix instead of one long
pass). A request that the exact path would truncate goes to it, for itself alone, and so does a request
longer than a sliding-window model's window, and generation for a model whose generation_config asks
for more than a plain argmax.

In reduced precision (bfloat16, float16) log-likelihoods take v1's arithmetic in the logits' dtype
(evalsuite.engine.fast.logprobs), and generation takes the exact path: batched greedy decoding rounds
differently from one prompt alone, and in these formats that changes the argmax wherever two tokens are
close (measured: 3 to 6 of 25 GSM8k generations, where the exact path at batch size 8 changes 5 to 12);
v1 generated one prompt at a time. And the choices of a document that the rounding of a cached prefix
could reorder are answered again on the exact path (evalsuite.engine.fast.ties), so that its outcome is
v1's.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.model import LM

from evalsuite.engine.base import CostReading
from evalsuite.engine.fast import onednn, sparse
from evalsuite.engine.fast.generate import GenerationRequest, Generator, NonFiniteLogits, cut, plain_greedy
from evalsuite.engine.fast.scorer import Counters, PrefixScorer
from evalsuite.engine.fast.ties import Settler
from evalsuite.engine.fast.trie import build_plan
from evalsuite.engine.hf import FedPositions
from evalsuite.engine.tokenize import TokenRequest, encode, encode_pairs, prefix_token_id
from evalsuite.errors import ConfigError, NonFiniteAnswer
from evalsuite.precision import reduced_precision

DEFAULT_MAX_GEN_TOKS = 256  # v1's cap, and lm-eval's default


class FastLM(LM):
    """Also the fast backend's CostMeter (`reading`, `take_inputs`): it counts what it forwards itself, and
    the positions its exact path is fed. How the pipeline calls it: evalsuite.engine.fast.FAST_CALLS."""

    def __init__(self, exact: Any, max_batch_tokens: int) -> None:
        super().__init__()
        self.exact = exact  # lm-eval's HF class, set up as v1 ran
        self.model = exact.model
        self.tokenizer = exact.tokenizer
        self.max_length = int(exact.max_length)
        # The cache here keeps every position; a sliding-window model sees the same only within its window.
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        window = getattr(config, "sliding_window", None)
        self.window = int(window) if isinstance(window, int) and window > 0 else None
        self.max_batch_tokens = max_batch_tokens
        self.configured_batch_tokens = max_batch_tokens
        self.precision = reduced_precision(self.model.dtype)
        self.batched_generation = self.precision is None
        sparse.probe(self.model)  # before any request: the first pass must be batched like every other
        self.counters = Counters()
        self._exact = 0  # requests answered by the exact path
        self._exact_fed = 0  # positions the exact path was fed (all real: batch size 1)
        # The log-likelihood requests as token ids since `take_inputs`; None until `keep_inputs` (a
        # data-parallel replica or a bench script never asks, and must not keep every request of a run).
        self._inputs: list[TokenRequest] | None = None
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else self.tokenizer.eos_token_id or 0)

    @property
    def settings(self) -> dict[str, Any]:
        """What decides its numbers and its speed, for results.json."""
        return {
            "max_batch_tokens": self.configured_batch_tokens,
            "max_batch_tokens_after_out_of_memory": self.max_batch_tokens,
            "out_of_memory_retries": self.counters.oom_retries,
            "max_length": self.max_length,
            "generation": "batched" if self.batched_generation else "exact path (reduced precision)",
            "matrix_products": onednn.describe(self.model),
        }

    def use_budget(self, max_batch_tokens: int) -> None:
        """Batch by this budget from now on (the one a resumed run or the other replicas use)."""
        self.max_batch_tokens = self.configured_batch_tokens = max_batch_tokens

    def reading(self) -> CostReading:
        """What it forwarded (CostMeter): its own passes, and the positions fed to its exact path."""
        c = self.counters
        return CostReading(c.positions + self._exact_fed, c.padded + self._exact_fed, self._exact)

    def keep_inputs(self) -> None:
        """From now on keep each log-likelihood request's token ids for `take_inputs`."""
        if self._inputs is None:
            self._inputs = []

    def take_inputs(self) -> list[TokenRequest] | None:
        """Each log-likelihood request answered since the last call, as token ids: what the accounting's
        unique-prefix floor and truncation count read, tokenised once. None before `keep_inputs`."""
        inputs = self._inputs
        if inputs is not None:
            self._inputs = []
        return inputs

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        prefix = prefix_token_id(self.tokenizer)
        encoded = encode_pairs(self.tokenizer, [(req.args[0], req.args[1]) for req in requests], prefix)
        if self._inputs is not None:
            self._inputs += encoded
        fast = [i for i, e in enumerate(encoded) if e.fits(self.max_length) and self._in_window(e.length)]
        slow = sorted(set(range(len(requests))) - set(fast))
        plan = build_plan([encoded[i] for i in fast])
        answers: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        settle = Settler(requests, answers, set(fast), self.precision, self.cache_hook)

        def done(k: int, lp: float, top: bool) -> None:  # as each request completes: resume keeps it
            answers[fast[k]] = (lp, top)
            settle.answered(fast[k])

        scorer = PrefixScorer(self.model, self.max_batch_tokens, self.pad_token_id, self.counters)
        scorer.score(plan, done)
        self.max_batch_tokens = scorer.max_batch_tokens  # keep a budget lowered by an out-of-memory error
        self._on_exact_path("loglikelihood", requests, slow, answers)
        self._on_exact_path("loglikelihood", requests, settle.close_calls(), answers)
        return answers

    def _in_window(self, length: int) -> bool:
        return self.window is None or length <= self.window

    def _on_exact_path(self, method: str, requests: list[Any], indices: list[int], answers: list[Any]) -> None:
        """Answer requests[indices] with lm-eval's HF class, into answers[indices]."""
        if not indices:
            return
        self._exact += len(indices)
        fed = FedPositions(self.model)
        try:
            exact = getattr(self.exact, method)([requests[i] for i in indices], disable_tqdm=True)
        finally:
            fed.close()
            self._exact_fed += fed.fed
        for i, answer in zip(indices, exact, strict=True):
            answers[i] = answer
            self.cache_hook.add_partial(method, requests[i].args, answer)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        eos_text = self.tokenizer.decode([self.tokenizer.eos_token_id], skip_special_tokens=False)
        prepared: list[GenerationRequest] = []
        for req in requests:
            context, kwargs = req.args
            if kwargs.get("do_sample") or kwargs.get("temperature"):
                raise ConfigError("the fast backend decodes greedily only; use --backend hf for sampled generation")
            until = [kwargs["until"]] if isinstance(kwargs.get("until"), str) else list(kwargs.get("until") or [])
            if eos_text not in until:
                until.append(eos_text)
            limit = int(kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS))
            prepared.append(GenerationRequest(tuple(encode(self.tokenizer, context)), tuple(until), limit))
        greedy = self.batched_generation and plain_greedy(self.model.generation_config)
        fast = [
            i
            for i, r in enumerate(prepared)
            if greedy
            and len(r.prompt) <= self.max_length - r.max_new_tokens
            and self._in_window(len(r.prompt) + r.max_new_tokens)
        ]
        slow = sorted(set(range(len(requests))) - set(fast))
        texts: list[str] = [""] * len(requests)
        generator = Generator(self.model, self.tokenizer, self.max_batch_tokens, self.pad_token_id, self.counters)

        def done(k: int, ids: list[int]) -> None:
            i = fast[k]
            texts[i] = cut(self.tokenizer.decode(ids, skip_special_tokens=True), prepared[i].until)
            self.cache_hook.add_partial("generate_until", requests[i].args, texts[i])

        try:
            generator.generate([prepared[i] for i in fast], done)
        except NonFiniteLogits as exc:  # before its answer exists: --resume asks for it again
            raise NonFiniteAnswer("generate_until", requests[fast[exc.index]].args, exc.value, exc.generated) from None
        finally:
            self.max_batch_tokens = generator.max_batch_tokens
        self._on_exact_path("generate_until", requests, slow, texts)
        return texts

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        raise ConfigError(
            "the fast backend answers loglikelihood and generate_until only, not loglikelihood_rolling "
            "(perplexity tasks); use --backend hf"
        )
