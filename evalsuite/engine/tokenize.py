"""Requests as token ids, exactly as lm-eval 0.4.13's HF class builds them for v1 (no BOS token).

Log-likelihood: the context and context + continuation are encoded separately and the joint encoding
is split at the context's length, so a word that merges across the boundary is scored as the exact path
scores it; trailing spaces of the context move to the continuation; an empty context becomes the
prefix token. The model input is context + continuation without its last token.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenRequest:
    """One log-likelihood request as token ids."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]

    @property
    def input(self) -> tuple[int, ...]:
        """What the model is fed: every token but the last, whose logits predict the continuation."""
        return (self.context + self.continuation)[:-1]

    def truncated_input(self, max_length: int) -> tuple[int, ...]:
        """The input as the exact path feeds it: its last `max_length` tokens."""
        return (self.context + self.continuation)[-(max_length + 1) :][:-1]

    @property
    def length(self) -> int:
        return len(self.context) + len(self.continuation)

    def fits(self, max_length: int) -> bool:
        """False when the exact path would cut tokens from the left (or has nothing to score)."""
        return len(self.continuation) > 0 and self.length <= max_length + 1


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids without special tokens: v1 never added a BOS token."""
    return list(_encode(tokenizer, text))


@functools.lru_cache(maxsize=4096)
def _encode(tokenizer: Any, text: str) -> tuple[int, ...]:
    # A document's choices share its context: each context is encoded once for all of them (tokenizers
    # hash by identity).
    return tuple(tokenizer.encode(text, add_special_tokens=False))


def encode_pair(
    tokenizer: Any, context: str, continuation: str, prefix_token_id: int, encoded: dict[str, list[int]] | None = None
) -> TokenRequest:
    """lm-eval's TemplateLM.loglikelihood / _encode_pair for a causal model (`encoded`: texts encoded already)."""

    def enc(text: str) -> list[int]:
        return encoded[text] if encoded is not None and text in encoded else encode(tokenizer, text)

    if context == "":
        cont = enc(continuation)
        if cont and cont[0] == prefix_token_id:
            return TokenRequest(tuple(cont[:1]), tuple(cont[1:]))
        return TokenRequest((prefix_token_id,), tuple(cont))
    context, whole = _texts(context, continuation)
    ctx = enc(context)
    return TokenRequest(tuple(ctx), tuple(enc(whole)[len(ctx) :]))


def _texts(context: str, continuation: str) -> tuple[str, str]:
    """The context and the whole text lm-eval encodes: trailing spaces of the context move to the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    return context, context + continuation


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]], prefix_token_id: int) -> list[TokenRequest]:
    """`encode_pair` of each pair, every distinct text encoded once in one batch call (a fast tokenizer
    encodes a batch on all cores; the ids are those of encoding each text alone)."""
    texts: dict[str, None] = {}
    for context, continuation in pairs:
        for text in _texts(context, continuation) if context else (continuation,):
            texts[text] = None
    batch = list(texts)
    encoded = dict(zip(batch, tokenizer(batch, add_special_tokens=False)["input_ids"], strict=True)) if batch else {}
    return [encode_pair(tokenizer, c, k, prefix_token_id, encoded) for c, k in pairs]


def prefix_token_id(tokenizer: Any) -> int:
    """The token that stands for an empty context: BOS, else EOS (lm-eval's HF class)."""
    bos = tokenizer.bos_token_id
    return int(bos if bos is not None else tokenizer.eos_token_id)
