"""Many texts to token ids, fast: one batch call of the Rust tokenizer, and a shared head encoded once.

A log-likelihood request is encoded as its context and as context + continuation (lm-eval's joint
encoding), so a document with four choices encodes its long few-shot context five times: most of a
run's tokenisation. For the tokenizers this tool is for, the ids of a text cut at a *boundary* (a space
after a printable character that is not a space) are the ids of the part before it followed by those of
the part from it on, whatever follows. `Splitter.tail` finds the last boundary of the context; the
context + continuation is then the context's ids before that boundary followed by the ids of the short
tail: the long head is encoded once for all choices.

This is proved for two families, recognised from the tokenizer's own description (its backend's JSON);
any other tokenizer is encoded whole, text by text, as before:

- sentencepiece-style BPE (Llama, Mistral, Mixtral): spaces become `▁`, one `▁` is put in front (a
  `Prepend` + `Replace` normaliser, or a `Metaspace` pre-tokenizer), and BPE merges symbols over the
  whole text. A merge can only join symbols that a token of the vocabulary holds together; when no token
  holds a character other than `▁` followed by `▁` (checked on the vocabulary), nothing merges across a
  boundary, the merges on each side are those of that side alone, and the part from the boundary on is
  the tokenizer's encoding of the text after the space (its leading `▁` standing for the space).
- byte-level BPE with the GPT-2 pattern (or Llama 3's, or Qwen 2's): the pattern cuts the text into
  pieces, each encoded alone; in none of them does a space follow another character (a space can only
  start a piece), and the pattern looks only forward, so the pieces from a boundary on are those of the
  part from it on, encoded alone, and the pieces before it do not change. An NFC normaliser (Qwen 2's)
  keeps this: a space composes with nothing, so the normal form of a text is that of its part before a
  space followed by that of its part from the space on.

A text holding an added token's content is encoded whole: added tokens are cut out before the
normaliser and may absorb the spaces next to them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SPACE = " "
METASPACE = "\u2581"  # ▁

# The split patterns of byte-level tokenizers with the property above (GPT-2's is ByteLevel's own).
_CONTRACTIONS_AND_WORDS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
_THE_REST = r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = _CONTRACTIONS_AND_WORDS + r"\p{N}{1,3}" + _THE_REST
QWEN2_PATTERN = _CONTRACTIONS_AND_WORDS + r"\p{N}" + _THE_REST
_SAFE_PATTERNS = (LLAMA3_PATTERN, QWEN2_PATTERN)


# Where transformers 5 defines the methods `tokenizer.encode` runs: a class that redefines one is called as is.
_STOCK = (
    ("encode", "transformers.tokenization_utils_base"),
    ("__call__", "transformers.tokenization_utils_base"),
    ("_encode_plus", "transformers.tokenization_utils_tokenizers"),
)


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Each text's ids without special tokens, as lm-eval gets them (`tokenizer.encode(text,
    add_special_tokens=False)`): for a stock fast tokenizer in one batch call of the Rust tokenizer (spread
    over all cores), for any other through its own `encode`, text by text."""
    if not texts:
        return []
    backend = _direct_backend(tokenizer)
    if backend is not None:  # what `encode` runs, less the offsets and masks no one reads
        return [e.ids for e in backend.encode_batch_fast(list(texts), add_special_tokens=False)]
    return [list(tokenizer.encode(text, add_special_tokens=False)) for text in texts]


def _direct_backend(tokenizer: Any) -> Any:
    """The Rust tokenizer when calling it is exactly what the tokenizer's `encode` does: the stock fast
    class's methods, no truncation or padding set on the backend, special tokens handled alike."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not _stock(tokenizer):
        return None
    if not hasattr(backend, "encode_batch_fast") or backend.truncation is not None or backend.padding is not None:
        return None
    if backend.encode_special_tokens != bool(getattr(tokenizer, "split_special_tokens", False)):
        return None
    return backend


def _stock(tokenizer: Any) -> bool:
    """The tokenizer encodes with transformers' own methods: its backend's description is what `encode` does."""
    return all(getattr(getattr(type(tokenizer), name, None), "__module__", "") == module for name, module in _STOCK)


@dataclass(frozen=True)
class Splitter:
    """Where a tokenizer's texts can be cut (see the module's docstring)."""

    skip: int  # 1: the tail's text starts after the boundary's space (a normaliser puts the `▁` back)
    added: re.Pattern[str] | None  # the added tokens' contents: texts holding one are not cut

    def boundary(self, text: str) -> int:
        """The last boundary of `text` with something after it, or 0 when there is none."""
        s = text.rfind(SPACE, 0, len(text) - 1)
        while s > 0:
            before = text[s - 1]
            if before.isprintable() and not before.isspace() and before != METASPACE:
                return s
            s = text.rfind(SPACE, 0, s)
        return 0

    def tail(self, text: str, s: int) -> str:
        """The text whose encoding is `text`'s ids from boundary `s` on."""
        return text[s + self.skip :]

    def holds_added(self, text: str) -> bool:
        """Whether an added token may be cut out of `text`: looked for with `▁` and spaces alike and a space
        in front (a normalised token is matched on the normaliser's output, which may spell either way)."""
        return self.added is not None and self.added.search(SPACE + text.replace(METASPACE, SPACE)) is not None


def splitter_for(tokenizer: Any) -> Splitter | None:
    """The tokenizer's splitter, or None when it is not of a family where cutting is proved exact (read again
    when tokens are added to the tokenizer or its normaliser or pre-tokenizer is replaced)."""
    return _splitter(tokenizer, version(tokenizer)) if _stock(tokenizer) else None


def version(tokenizer: Any) -> tuple[Any, ...]:
    """What changes when a tokenizer is changed in place (tokens added, normaliser or pre-tokenizer replaced):
    part of the keys of what is cached per tokenizer. Any tokenizer-like object has one."""
    try:
        size: int | None = len(tokenizer)
    except TypeError:
        size = None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return (size, *(_state(getattr(backend, name, None)) for name in ("normalizer", "pre_tokenizer")))


def _state(part: Any) -> Any:
    """A Rust normaliser's or pre-tokenizer's serialised state (bytes); another object stands for itself."""
    if part is None:
        return None
    try:
        state = part.__getstate__()
    except Exception:  # noqa: BLE001 - not a Rust component: its identity changes when it is replaced
        return id(part)
    return state if isinstance(state, bytes) else id(part)


@functools.lru_cache(maxsize=16)
def _splitter(tokenizer: Any, version: tuple[Any, ...]) -> Splitter | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    try:
        spec = json.loads(backend.to_str())
    except Exception:  # noqa: BLE001 - a backend that cannot describe itself is encoded whole
        return None
    model, normalizer, pre = spec.get("model") or {}, spec.get("normalizer"), spec.get("pre_tokenizer")
    if not _plain_bpe(model):
        return None
    if _byte_level(normalizer, pre):
        skip = 0
    elif _metaspace(normalizer, pre) and _no_merge_across(backend.get_vocab()) and not model.get("ignore_merges"):
        skip = 1 if normalizer is not None else 0  # a Metaspace pre-tokenizer adds no `▁` to a text starting with one
    else:
        return None
    return Splitter(skip=skip, added=_added_pattern(backend))


def _plain_bpe(model: dict[str, Any]) -> bool:
    return (
        model.get("type") == "BPE"
        and model.get("dropout") is None
        and not model.get("continuing_subword_prefix")
        and not model.get("end_of_word_suffix")
    )


def _byte_level(normalizer: Any, pre: Any) -> bool:
    if normalizer not in (None, {"type": "NFC"}) or not isinstance(pre, dict):
        return False
    if pre.get("type") == "ByteLevel":
        return pre.get("use_regex") is True and pre.get("add_prefix_space") is False
    if pre.get("type") != "Sequence" or len(pre.get("pretokenizers", [])) != 2:
        return False
    split, byte_level = pre["pretokenizers"]
    return (
        split.get("type") == "Split"
        and split.get("pattern") in ({"Regex": p} for p in _SAFE_PATTERNS)
        and split.get("behavior") == "Isolated"
        and split.get("invert") is False
        and byte_level.get("type") == "ByteLevel"
        and byte_level.get("use_regex") is False
        and byte_level.get("add_prefix_space") is False
    )


def _metaspace(normalizer: Any, pre: Any) -> bool:
    prepend_replace = [
        {"type": "Prepend", "prepend": METASPACE},
        {"type": "Replace", "pattern": {"String": SPACE}, "content": METASPACE},
    ]
    if pre is None and isinstance(normalizer, dict):
        return normalizer.get("type") == "Sequence" and normalizer.get("normalizers") == prepend_replace
    return (
        normalizer is None
        and isinstance(pre, dict)
        and pre.get("type") == "Metaspace"
        and pre.get("replacement") == METASPACE
        and pre.get("prepend_scheme") in ("first", "always")
    )


def _no_merge_across(vocab: dict[str, int]) -> bool:
    """True when no token holds a character other than `▁` followed by `▁`: no merge crosses a boundary."""
    if METASPACE not in vocab:
        return False
    for token in vocab:
        at = token.find(METASPACE, 1)
        while at > 0:
            if token[at - 1] != METASPACE:
                return False
            at = token.find(METASPACE, at + 1)
    return True


def _added_pattern(backend: Any) -> re.Pattern[str] | None:
    contents = {token.content.replace(METASPACE, SPACE) for token in backend.get_added_tokens_decoder().values()}
    contents.discard("")
    if not contents:
        return None
    return re.compile("|".join(re.escape(c) for c in sorted(contents, key=len, reverse=True)))
