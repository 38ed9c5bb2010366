"""Requests as token ids, exactly as lm-eval 0.4.13's HF class builds them for v1 (no BOS token).

Log-likelihood: the context and context + continuation are encoded separately and the joint encoding
is split at the context's length, so a word that merges across the boundary is scored as the exact path
scores it; trailing spaces of the context move to the continuation; an empty context becomes the
prefix token. The model input is context + continuation without its last token. Many requests are
encoded at once (`encode_pairs`), the shared contexts once (`engine.encoding`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalsuite.engine.encoding import Splitter, encode_texts, splitter_for, version


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
    return list(_encode(tokenizer, version(tokenizer), text))


@functools.lru_cache(maxsize=4096)
def _encode(tokenizer: Any, version: tuple[Any, ...], text: str) -> tuple[int, ...]:
    # A context shared by a document's choices (`encode_pair` one pair at a time) is encoded once
    # (tokenizers hash by identity; the version changes when the tokenizer is changed in place).
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
    """`encode_pair` of each pair, in one batch call of the tokenizer: every distinct text once, and where the
    tokenizer allows it (`encoding.Splitter`) the context + continuation as the context's ids before its last
    boundary followed by the short tail's: a document's long context is encoded once for all its choices."""
    splitter = splitter_for(tokenizer)
    texts: dict[str, None] = {}
    plans: list[tuple[str | None, str, tuple[str, str] | None]] = []  # context (None: empty), whole text, tails
    for context, continuation in pairs:
        if not context:  # empty as given: a context of spaces only is stripped to "" below, and is no prefix token
            texts[continuation] = None
            plans.append((None, continuation, None))
            continue
        context, whole = _texts(context, continuation)
        tails = _tails(splitter, context, whole) if splitter is not None else None
        texts.update(dict.fromkeys((context, *tails) if tails else (context, whole)))
        plans.append((context, whole, tails))
    batch = list(texts)
    encoded = dict(zip(batch, encode_texts(tokenizer, batch), strict=True))
    requests = []
    for given, whole, tails in plans:
        if given is None:
            requests.append(encode_pair(tokenizer, "", whole, prefix_token_id, encoded))
            continue
        ctx = encoded[given]
        # the continuation: the whole text's ids past the context's (with tails: past the context's tail's,
        # the ids before the boundary being the same in both)
        cont = encoded[tails[1]][len(encoded[tails[0]]) :] if tails else encoded[whole][len(ctx) :]
        requests.append(TokenRequest(tuple(ctx), tuple(cont)))
    return requests


def _tails(splitter: Splitter, context: str, whole: str) -> tuple[str, str] | None:
    """The texts whose ids are those of the context and of the whole text from the context's last boundary
    on; None when the context has no boundary or the text holds an added token."""
    s = splitter.boundary(context)
    if not s or splitter.holds_added(whole):
        return None
    return splitter.tail(context, s), splitter.tail(whole, s)


def prefix_token_id(tokenizer: Any) -> int:
    """The token that stands for an empty context: BOS, else EOS (lm-eval's HF class)."""
    bos = tokenizer.bos_token_id
    return int(bos if bos is not None else tokenizer.eos_token_id)
