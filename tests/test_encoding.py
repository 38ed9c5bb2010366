"""Encoding many requests at once, a shared context once: the same ids as the tokenizer's own encoding of
each text (lm-eval's), on the reference tokenizers and on variants of each family, with texts built to
break the cut (spaces in runs, `▁` in the text, tabs and newlines, unicode spaces, added tokens)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from conftest import GOLDEN
from evalsuite.engine import encoding
from evalsuite.engine.encoding import LLAMA3_PATTERN, QWEN2_PATTERN, encode_texts, splitter_for
from evalsuite.engine.tokenize import encode, encode_pair, encode_pairs, prefix_token_id

SP = GOLDEN / "models" / "tiny-moe-sp"  # Mistral's layout: Prepend + Replace normaliser, BPE over the whole text
BYTE_LEVEL = GOLDEN / "models" / "tiny-moe"  # GPT-2's: ByteLevel with its split pattern
METASPACE = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}

PIECES = [
    "the", "cat", "sat", "on", "mat", "Answer", "Question", "honey", "é", "中文", "42", "3.14", "'s", "'ll",
    "(A)", "Paris", ":", ".", ",", "?", "-", "\u2581", "\u2581\u2581", "x", "e\u0301", "\u0301", "\u2000",
]  # fmt: skip
# Pairs where a wrong cut shows (most wrong cuts give right continuations by luck: the extra or missing
# tokens are the same in the context's tail and the whole text's): merges across a space, an added token
# holding a space, runs of `▁`, pieces of two words.
HARD_PAIRS = [
    ("ate sat at", "the sat"), ("x the cat", " y"), ("the cat\u3000.\n\n", "  sat\u200b"),
    (":\u2581 (A)  \u2581 ", "  on  :"), ("a b c d", " e"), ("", " An empty context"), ("Answer:", " A"),
    (" ", "A"), ("\n\n", "Answer: yes"),  # contexts of spaces only: no prefix token (not empty as given)
    ("x\u2581the ca", "t"), ("q x\u2581the cat", " is"), ("x the\u2581ca", "t"),  # an added token spelt with `▁`
    ("b\u2581 \u2581", "a"), ("aa\u2581 \u2581", "ba"),  # a space after a `▁`: inside a run of `▁`, no boundary
]  # fmt: skip
WORD_PAIRS = r"\S+ \S+|\S+|\s"
GAPS = [" ", " ", " ", "  ", "   ", "\n", "\n\n", "\t", " \n", "\u00a0", "\u3000", "\u200b", "", "\u2581 "]


def _text(rng: random.Random, words: int) -> str:
    return "".join(rng.choice(PIECES) + rng.choice(GAPS) for _ in range(words)).rstrip(" ") or "x"


def _pairs(seed: int, n: int = 1500) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n // 4):
        context = _text(rng, rng.randint(1, 30)) + rng.choice(["", " ", ":", "  ", "\n", "\u2581"])
        for _ in range(4):  # a document's choices share its context
            pairs.append((context, rng.choice(["", " ", "  ", "\n"]) + _text(rng, rng.randint(1, 4))))
    return pairs + HARD_PAIRS


def _variant(path: Any, edit: Any) -> Any:
    """The tokenizer at `path` with its backend's description changed by `edit(spec)`."""
    spec = json.loads(AutoTokenizer.from_pretrained(path).backend_tokenizer.to_str())
    edit(spec)
    backend = Tokenizer.from_str(json.dumps(spec))
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>")


def _metaspace(spec: dict) -> None:
    spec["normalizer"], spec["pre_tokenizer"] = None, dict(METASPACE)


def _metaspace_split(spec: dict) -> None:
    spec["normalizer"], spec["pre_tokenizer"] = None, {**METASPACE, "split": True}


def _whitespace_merges(spec: dict) -> None:
    """`▁▁` and `▁▁▁▁` tokens merged first (real sentencepiece vocabularies hold runs of `▁`)."""
    model = spec["model"]
    for token in ("\u2581\u2581", "\u2581\u2581\u2581\u2581"):
        model["vocab"][token] = len(model["vocab"])
    model["merges"] = [["\u2581", "\u2581"], ["\u2581\u2581", "\u2581\u2581"]] + model["merges"]


def _metaspace_with_runs(spec: dict) -> None:
    _metaspace(spec)
    _whitespace_merges(spec)


def _merge_across(spec: dict) -> None:
    """Tokens `t▁a`, `at▁c` and `t▁ae`, merged first: merges cross the cut; the tokenizer is not cut."""
    model = spec["model"]
    merges = [["t", "\u2581a"], ["at", "\u2581c"], ["t\u2581a", "e"]]
    for left, right in merges:
        model["vocab"][left + right] = len(model["vocab"])
    model["merges"] = merges + model["merges"]


def _llama3(spec: dict) -> None:
    spec["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }


def _word_pairs(spec: dict) -> None:
    """A split pattern that keeps two words in a piece: where a piece starts depends on what came before,
    the cut would be wrong; not cut."""
    spec["pre_tokenizer"] = _word_pairs_spec()


def _word_pairs_spec() -> dict:
    return {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": WORD_PAIRS}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }


def _added_with_space(spec: dict) -> None:
    """Added tokens whose content holds a space (chat markers do), one matched on the normaliser's output
    (where `▁` and a space are one): texts holding them are not cut."""
    for normalized, content in ((False, "the cat"), (True, "x the ca")):
        spec["added_tokens"].append(
            {"id": len(spec["model"]["vocab"]) + normalized, "content": content, "single_word": False,
             "lstrip": False, "rstrip": False, "normalized": normalized, "special": False}
        )  # fmt: skip


def _qwen2(spec: dict) -> None:
    _llama3(spec)
    spec["normalizer"] = {"type": "NFC"}
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": QWEN2_PATTERN}


TOKENIZERS = {
    "sentencepiece, normaliser": (lambda: AutoTokenizer.from_pretrained(SP), True),
    "sentencepiece, Metaspace": (lambda: _variant(SP, _metaspace), True),
    "sentencepiece, Metaspace split": (lambda: _variant(SP, _metaspace_split), True),
    "sentencepiece, runs of ▁": (lambda: _variant(SP, _whitespace_merges), True),
    "sentencepiece, Metaspace, runs of ▁": (lambda: _variant(SP, _metaspace_with_runs), True),
    "sentencepiece, added token with a space": (lambda: _variant(SP, _added_with_space), True),
    "sentencepiece, merges across a space": (lambda: _variant(SP, _merge_across), False),
    "byte-level GPT-2": (lambda: AutoTokenizer.from_pretrained(BYTE_LEVEL), True),
    "byte-level Llama 3": (lambda: _variant(BYTE_LEVEL, _llama3), True),
    "byte-level Qwen 2 (NFC)": (lambda: _variant(BYTE_LEVEL, _qwen2), True),
    "byte-level, added token with a space": (lambda: _variant(BYTE_LEVEL, _added_with_space), True),
    "byte-level, two words a piece": (lambda: _variant(BYTE_LEVEL, _word_pairs), False),
}


def _one_by_one(tokenizer: Any, pairs: list[tuple[str, str]]) -> list[Any]:
    """The reference: lm-eval's encoding, each text by `tokenizer.encode` on its own."""
    return [encode_pair(tokenizer, c, k, prefix_token_id(tokenizer)) for c, k in pairs]


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_encoding_at_once_gives_each_texts_own_ids(name: str) -> None:
    make, cut = TOKENIZERS[name]
    tokenizer = make()
    assert (splitter_for(tokenizer) is not None) is cut  # each family recognised, the others encoded whole
    for seed in (1, 2):
        pairs = _pairs(seed)
        assert encode_pairs(tokenizer, pairs, prefix_token_id(tokenizer)) == _one_by_one(tokenizer, pairs)


def test_the_cut_is_taken_and_saves_the_shared_contexts(monkeypatch: pytest.MonkeyPatch) -> None:
    """On few-shot requests the contexts are encoded once: the texts handed to the tokenizer are far shorter."""
    tokenizer = AutoTokenizer.from_pretrained(SP)
    shots = "".join(f"Question: What is {i} and {i}?\nAnswer: {2 * i}\n\n" for i in range(5))
    pairs = [(shots + f"Question: What is {n}?\nAnswer:", f" {c}") for n in range(20) for c in "ABCD"]
    handed: list[str] = []
    original = encoding.encode_texts

    def watched(tok: Any, texts: Any) -> Any:
        handed.extend(texts)
        return original(tok, texts)

    monkeypatch.setattr("evalsuite.engine.tokenize.encode_texts", watched)  # watched, not replaced
    got = encode_pairs(tokenizer, pairs, prefix_token_id(tokenizer))
    assert got == _one_by_one(tokenizer, pairs)
    contexts = sum(len(c) for c in {c for c, _ in pairs})
    assert sum(map(len, handed)) < 1.5 * contexts  # encoding each whole text would hand over 5 times as much


def test_encode_texts_ignores_a_truncation_left_on_the_backend() -> None:
    """The Rust tokenizer is called directly only when that is what `encode` does: a truncation someone set
    on the backend (which transformers' `encode` clears) sends it through `encode`."""
    tokenizer = AutoTokenizer.from_pretrained(BYTE_LEVEL)
    texts = ["a long text of many words, longer than eight tokens for sure", "short"]
    want = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    assert encode_texts(tokenizer, texts) == want
    tokenizer.backend_tokenizer.enable_truncation(8)
    assert encode_texts(tokenizer, texts) == want


@pytest.mark.parametrize("method", ["encode", "_encode_plus"])
def test_a_tokenizer_that_redefines_its_encoding_is_called_as_is(method: str) -> None:
    """A tokenizer class of a model's own code may redefine how it encodes: lm-eval calls its `encode`, and
    so does `encode_texts` then."""
    plain = AutoTokenizer.from_pretrained(BYTE_LEVEL)
    base = type(plain)

    def shouting(self: Any, text: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(base, method)(self, text.upper() if isinstance(text, str) else text, *args, **kwargs)

    tokenizer = type("Shouting", (base,), {method: shouting}).from_pretrained(BYTE_LEVEL)
    texts = ["the cat sat", "Answer: honey"]
    want = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    assert want != [plain.encode(t, add_special_tokens=False) for t in texts]  # it does shout
    assert encode_texts(tokenizer, texts) == want
    assert splitter_for(tokenizer) is None  # its backend's description is not what its encode does: not cut
    pairs = [("the cat sat", " on"), ("Answer:", " honey")]
    assert encode_pairs(tokenizer, pairs, prefix_token_id(tokenizer)) == _one_by_one(tokenizer, pairs)


class _Words:
    """A tokenizer-like object of a model's own code: `encode` and the special ids, no length, no backend."""

    bos_token_id, eos_token_id = 1, 2

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [3 + len(word) for word in text.split(" ")]


def test_a_tokenizer_like_object_is_encoded_through_its_encode() -> None:
    words = _Words()
    pairs = [("a bb ccc", " dddd"), ("x ", "yy"), ("", " e")]
    want = [
        ((4, 5, 6), (7,)),  # "a bb ccc" and "a bb ccc dddd"
        ((4,), (5,)),  # the context's trailing space moves: "x" and "x yy"
        ((1,), (3, 4)),  # an empty context is the prefix token
    ]
    got = encode_pairs(words, pairs, prefix_token_id(words))
    assert [(r.context, r.continuation) for r in got] == want
    assert encode(words, "a generation prompt") == [4, 13, 9]  # the generation path's encoding


def _add_a_token(tokenizer: Any) -> None:
    tokenizer.add_tokens(["the cat"], special_tokens=True)


def _pieces_of_two_words(tokenizer: Any) -> None:
    tokenizer.backend_tokenizer.pre_tokenizer = Tokenizer.from_str(
        json.dumps({**json.loads(tokenizer.backend_tokenizer.to_str()), "pre_tokenizer": _word_pairs_spec()})
    ).pre_tokenizer


@pytest.mark.parametrize(("path", "change"), [(SP, _add_a_token), (BYTE_LEVEL, _pieces_of_two_words)])
def test_a_tokenizer_changed_after_first_use_is_read_again(path: Any, change: Any) -> None:
    """The splitter is read again when the tokenizer changes after its first use: a token holding a space
    added, a split pattern replaced by one where the cut is wrong."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    pairs = [("x the cat", " sat"), ("a the catalog", " b"), ("a b c d", " e"), ("the cat sat on", " the mat")]
    encode_pairs(tokenizer, pairs, prefix_token_id(tokenizer))
    change(tokenizer)
    want = []
    for context, continuation in pairs:  # lm-eval's encoding, text by text, nothing cached
        ctx = tokenizer.encode(context, add_special_tokens=False)
        cont = tokenizer.encode(context + continuation, add_special_tokens=False)[len(ctx) :]
        want.append((tuple(ctx), tuple(cont)))
    got = encode_pairs(tokenizer, pairs, prefix_token_id(tokenizer))
    assert [(r.context, r.continuation) for r in got] == want
