"""Writes the demo's synthetic benchmark data and its byte-level BPE tokenizer (the committed files).

Run `python -m evalsuite.demo.generate` after changing this file. All text is invented; each split
has the Hub dataset's exact columns and types, and includes the cases that trip up reimplementations.
Everything derives from `random.Random(seed)` instances, so the output is the same on every run.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from evalsuite.benchmarks.spec import BenchmarkSpec
from evalsuite.benchmarks.table import get_spec
from evalsuite.tasks import arc, gsm8k, mmlu, truthfulqa

Row = dict[str, Any]

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
TOKENIZER_DIR = HERE / "tokenizer"
SEED = 1234

# Rows per split: eval splits small enough for a CPU smoke run in well under a minute (GSM8k
# generates up to 256 tokens per doc), few-shot splits at least as large as the shots v1 draws.
N_ROWS: dict[tuple[str, str], int] = {
    ("arc", "test"): 12,
    ("arc", "train"): 30,
    ("hellaswag", "validation"): 12,
    ("hellaswag", "train"): 12,
    ("mmlu", "test"): 2,  # per subject
    ("mmlu", "dev"): 5,  # per subject; v1 takes dev[:5]
    ("truthfulqa", "validation"): 10,
    ("winogrande", "validation"): 12,
    ("winogrande", "train"): 8,
    ("gsm8k", "test"): 4,
    ("gsm8k", "train"): 8,
}

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]  # ids 0..3, as Llama numbers them
VOCAB_SIZE = 1024
PROMPT_WEIGHT = 50  # the per-document prompt text counts like this many documents when training BPE
MODEL_MAX_LENGTH = 4096

NAMES = ["Orla", "Brannick", "Tamsin", "Quill", "Maren", "Edric", "Sable", "Corwin", "Liesel", "Fenna"]
PLACES = ["Ashford", "Kettlebrook", "Mirrow", "Stonereach", "Duneholm", "Gullhaven", "Saltcombe"]
NOUNS = [
    "lantern", "kettle", "compass", "ribbon", "marble", "pebble", "feather", "basket", "ladder", "candle",
    "mirror", "bucket", "saddle", "spindle", "lens", "rope", "barrel", "blanket", "magnet", "prism",
]  # fmt: skip
ADJECTIVES = ["bright", "heavy", "hollow", "damp", "smooth", "rusty", "narrow", "warm", "brittle", "glossy"]
VERBS = ["polished", "carried", "weighed", "heated", "cooled", "sorted", "folded", "measured", "lifted"]
ADVERBS = ["slowly", "carefully", "twice", "quietly", "again", "gently"]
PROPERTIES = ["its mass", "its color", "its temperature", "its shape", "its volume"]
TOOLS = ["a ruler", "a balance", "a thermometer", "a stopwatch", "a magnifier"]


# --- ARC: numeric answer keys, and 3- and 5-choice questions --------------------------------------


def arc_rows(rnd: random.Random, split: str, n: int) -> Iterator[Row]:
    for i in range(n):
        # i % 6: 1 -> keys "1".."4" (v1 maps them to letters), 3 -> three choices, 5 -> five choices
        n_choices = {3: 3, 5: 5}.get(i % 6, 4)
        labels = [str(k + 1) for k in range(n_choices)] if i % 6 == 1 else arc.LETTERS[:n_choices]
        noun, adj, verb = rnd.choice(NOUNS), rnd.choice(ADJECTIVES), rnd.choice(VERBS)
        if i % 2:
            question = f"A student {verb} a {adj} {noun} in a sunny room. Which property most likely changed?"
            texts = rnd.sample(PROPERTIES, n_choices)
        else:
            question = f"{rnd.choice(NAMES)} wants to know how {adj} a {noun} is. Which tool should be used?"
            texts = rnd.sample(TOOLS, n_choices)
        yield {
            "id": f"Demo_ARC_{split}_{i:04d}",
            "question": question,
            "choices": {"text": texts, "label": labels},
            "answerKey": labels[rnd.randrange(n_choices)],
        }


# --- HellaSwag: WikiHow brackets, empty and mid-capitalised ctx_b, string labels ------------------

ACTIVITIES = ["Washing a bicycle", "Folding laundry", "Playing the harmonica", "Raking leaves"]
WIKIHOW_CATEGORIES = ["Home and Garden", "Hobbies and Crafts", "Food and Entertaining"]


def _ending(rnd: random.Random) -> str:
    return f"{rnd.choice(VERBS)} the {rnd.choice(ADJECTIVES)} {rnd.choice(NOUNS)} {rnd.choice(ADVERBS)}."


def hellaswag_rows(rnd: random.Random, split: str, n: int) -> Iterator[Row]:
    for i in range(n):
        noun = rnd.choice(NOUNS)
        if i % 2 == 0:  # ActivityNet: a lower-case ctx_b with capitals inside (capitalize() lowers them)
            label = rnd.choice(ACTIVITIES)
            ctx_a = f"A person in {rnd.choice(PLACES)} stands beside a {rnd.choice(ADJECTIVES)} {noun}."
            ctx_b = f"the person lifts the {rnd.choice(ADJECTIVES).upper()} {noun} and"
            endings = [_ending(rnd) for _ in range(4)]
            source = f"activitynet~v_{rnd.getrandbits(40):010x}"
        else:  # WikiHow: [header]/[title]/[step] markers, sometimes an empty ctx_b
            label = rnd.choice(WIKIHOW_CATEGORIES)
            ctx_a = f"[header] How to clean a {noun} [title] Fill a bowl with warm water. [step] Add soap."
            ctx_b = "" if i % 4 == 1 else f"[title] Dry the {noun} with a cloth. [step] You"
            endings = [f"{_ending(rnd).capitalize()} [substeps] Wait {rnd.randint(2, 9)} min." for _ in range(4)]
            source = f"wikihow~{rnd.randint(10000, 99999)}"
        yield {
            "ind": rnd.randint(0, 50000),
            "activity_label": label,
            "ctx_a": ctx_a,
            "ctx_b": ctx_b,
            "ctx": f"{ctx_a} {ctx_b}" if ctx_b else ctx_a,
            "endings": endings,
            "source_id": source,
            "split": "val" if split == "validation" else split,
            "split_type": "indomain" if i % 3 else "zeroshot",
            "label": str(rnd.randrange(4)),
        }


# --- MMLU: choices with trailing spaces (v1 keeps them), questions with stray whitespace ----------


def mmlu_rows(rnd: random.Random, subject: str, n: int) -> Iterator[Row]:
    topic = subject.replace("_", " ")
    for i in range(n):
        if i % 2 == 0:
            a, b = rnd.randint(2, 60), rnd.randint(2, 60)
            question = (
                f"In an exercise on {topic}, a {rnd.choice(NOUNS)} is counted {a} times "
                f"and then {b} more times. What is the total?"
            )
            right = a + b
            wrong = rnd.sample([v for v in range(right - 9, right + 10) if v != right], 3)
            choices = [str(v) for v in [right, *wrong]]
        else:
            noun, adj = rnd.choice(NOUNS), rnd.choice(ADJECTIVES)
            question = f"Which statement about the {adj} {noun} is accepted in {topic}?\n"
            choices = [f"It was {verb} {rnd.choice(ADVERBS)}." for verb in rnd.sample(VERBS, 4)]
        order = list(range(4))
        rnd.shuffle(order)
        choices = [choices[j] for j in order]
        choices[rnd.randrange(4)] += " "
        yield {"question": question, "subject": subject, "choices": choices, "answer": order.index(0)}


# --- TruthfulQA: mc2 labels out of order ([1, 0, 1, 0]) for v1's first-zero split ----------------


def truthfulqa_rows(rnd: random.Random, split: str, n: int) -> Iterator[Row]:
    for i in range(n):
        noun = rnd.choice(NOUNS)
        question = f"What happens if you leave a {noun} outside in {rnd.choice(PLACES)} overnight?"
        true = [
            f"Nothing in particular happens to the {noun}.",
            f"The {noun} may get {rnd.choice(ADJECTIVES)}.",
        ]
        false = [
            f"The {noun} turns into a {rnd.choice(NOUNS)}.",
            f"The {noun} is {rnd.choice(VERBS)} by spirits.",
            f"You will be lucky for {rnd.randint(2, 9)} years.",
        ]
        mc1 = [true[0], *false[: 2 + i % 2]]
        if i % 3 == 1:
            mc2, labels = [true[0], false[0], true[1], false[1], false[2]], [1, 0, 1, 0, 0]
        else:
            mc2, labels = [*true, *false], [1, 1, 0, 0, 0]
        yield {
            "question": question,
            "mc1_targets": {"choices": mc1, "labels": [1] + [0] * (len(mc1) - 1)},
            "mc2_targets": {"choices": mc2, "labels": labels},
        }


# --- Winogrande: the blank mid-sentence and at the very end -----------------------------------------


def winogrande_rows(rnd: random.Random, split: str, n: int) -> Iterator[Row]:
    for i in range(n):
        a, b = rnd.sample(NAMES, 2)
        big, small = rnd.sample(NOUNS, 2)
        if i % 3 == 0:
            sentence = f"{a} lent the {rnd.choice(NOUNS)} to {b} because _ needed it for the fair."
            options, answer = (a, b), "2"
        elif i % 3 == 1:
            size = rnd.choice(["large", "small"])
            sentence = f"The {big} did not fit in the {small} because the _ was too {size}."
            options, answer = (big, small), "1" if size == "large" else "2"
        else:
            sentence = f"{a} asked {b} to fix the {rnd.choice(NOUNS)}, since the better builder was _."
            options, answer = (a, b), "2"
        if rnd.random() < 0.5:  # the same sentence with the options swapped
            options, answer = options[::-1], "1" if answer == "2" else "2"
        yield {"sentence": sentence, "option1": options[0], "option2": options[1], "answer": answer}


# --- GSM8k: <<a*b=c>> annotations, thousands separators, negatives, ':' inside the reasoning ------


def _gsm_sum(rnd: random.Random) -> tuple[str, str]:
    name, item = rnd.choice(NAMES), rnd.choice(NOUNS)
    have, more = rnd.randint(5, 60), rnd.randint(5, 60)
    total = have + more
    give = rnd.randint(1, total)
    left = total - give
    question = (
        f"{name} has {have} {item}s. A friend gives {name} {more} more, and then {name} gives away "
        f"{give} of them. How many {item}s does {name} have now?"
    )
    return question, (
        f"After the gift, {name} has {have} + {more} = <<{have}+{more}={total}>>{total} {item}s.\n"
        f"After giving some away, {name} has {total} - {give} = <<{total}-{give}={left}>>{left} {item}s.\n"
        f"#### {left}"
    )


def _gsm_bulk(rnd: random.Random) -> tuple[str, str]:
    per_day, days, extra = rnd.randint(1100, 1900), rnd.randint(3, 9), rnd.randint(200, 900)
    made = per_day * days
    stock = made + extra
    question = (
        f"A mill in {rnd.choice(PLACES)} presses {per_day:,} bricks a day for {days} days "
        f"and then buys {extra} more. How many bricks does it have?"
    )
    return question, (
        f"The mill presses {per_day:,} * {days} = <<{per_day}*{days}={made}>>{made:,} bricks.\n"
        f"With the extra bricks it has {made:,} + {extra} = <<{made}+{extra}={stock}>>{stock:,} bricks.\n"
        f"#### {stock:,}"
    )


def _gsm_cold(rnd: random.Random) -> tuple[str, str]:
    noon, drop = rnd.randint(2, 15), rnd.randint(20, 40)
    night = noon - drop
    question = (
        f"At noon it was {noon} degrees in {rnd.choice(PLACES)}. By night the temperature fell by "
        f"{drop} degrees. What was the temperature at night?"
    )
    return (
        question,
        f"At night it was {noon} - {drop} = <<{noon}-{drop}={night}>>{night} degrees.\n#### {night}",
    )


def _gsm_ratio(rnd: random.Random) -> tuple[str, str]:
    parts, total = rnd.randint(2, 5), rnd.randint(3, 12)
    flour = parts * total
    question = (
        f"A baker mixes flour and sugar in the ratio {parts}:1 and uses {flour} cups of flour. "
        "How many cups of sugar does the baker use?"
    )
    return question, (
        f"The ratio is flour:sugar = {parts}:1.\n"
        f"Sugar: {flour} / {parts} = <<{flour}/{parts}={total}>>{total} cups.\n"
        f"#### {total}"
    )


GSM8K_TEMPLATES: list[Callable[[random.Random], tuple[str, str]]] = [
    _gsm_sum,
    _gsm_cold,
    _gsm_bulk,
    _gsm_ratio,
]


def gsm8k_rows(rnd: random.Random, split: str, n: int) -> Iterator[Row]:
    for i in range(n):
        question, answer = GSM8K_TEMPLATES[i % len(GSM8K_TEMPLATES)](rnd)
        yield {"question": question, "answer": answer}


# --- writing --------------------------------------------------------------------------------------

ROW_MAKERS: dict[str, Callable[[random.Random, str, int], Iterator[Row]]] = {
    "arc": arc_rows,
    "hellaswag": hellaswag_rows,
    "mmlu": mmlu_rows,  # called with the subject in place of the split
    "truthfulqa": truthfulqa_rows,
    "winogrande": winogrande_rows,
    "gsm8k": gsm8k_rows,
}


def schema(name: str) -> Any:
    """The Hub dataset's arrow schema (tests compare it with the reference data's)."""
    import pyarrow as pa

    strings = pa.list_(pa.string())
    targets = pa.struct([("choices", strings), ("labels", pa.list_(pa.int32()))])
    text = pa.string()
    arc_choices = pa.struct([("text", strings), ("label", strings)])
    fields: dict[str, list[tuple[str, Any]]] = {
        "arc": [("id", text), ("question", text), ("choices", arc_choices), ("answerKey", text)],
        "hellaswag": [("ind", pa.int32()), ("activity_label", text), ("ctx_a", text), ("ctx_b", text),
                      ("ctx", text), ("endings", strings), ("source_id", text), ("split", text),
                      ("split_type", text), ("label", text)],
        "mmlu": [("question", text), ("subject", text), ("choices", strings), ("answer", pa.int64())],
        "truthfulqa": [("question", text), ("mc1_targets", targets), ("mc2_targets", targets)],
        "winogrande": [("sentence", text), ("option1", text), ("option2", text), ("answer", text)],
        "gsm8k": [("question", text), ("answer", text)],
    }  # fmt: skip
    return pa.schema(fields[name])


def benchmark_rows(spec: BenchmarkSpec, config: str, split: str, n: int | None = None) -> list[Row]:
    """The split's rows: N_ROWS of them, or `n`."""
    # One generator per (benchmark, config, split): changing one split leaves the others as they were.
    rnd = random.Random(f"{SEED}/{spec.name}/{config}/{split}")
    n = N_ROWS[(spec.name, split)] if n is None else n
    return list(ROW_MAKERS[spec.name](rnd, config if spec.name == "mmlu" else split, n))


def write_parquet(path: Path, rows: list[Row], schema: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    # No column statistics: they are most of a small file's bytes, and nothing reads them.
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, write_statistics=False)


def write_data(root: Path) -> list[str]:
    """Every split the benchmark table reads, in the offline layout; returns all text (for the tokenizer)."""
    texts: list[str] = []
    for name in ROW_MAKERS:
        spec = get_spec(name)
        for config in spec.configs:
            for split in spec.splits():
                rows = benchmark_rows(spec, config, split)
                write_parquet(root / spec.dataset / config / f"{split}.parquet", rows, schema(name))
                texts.extend(t for row in rows for t in _strings(row))
    return texts


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def prompt_texts() -> list[str]:
    """The fixed text the benchmarks wrap around every document, so that it gets tokens of its own."""
    per_doc = [
        arc.QUERY.format(question=""),
        gsm8k.QUERY.format(question=""),
        "".join(f"{letter}. \n" for letter in mmlu.LETTERS) + "Answer: A B C D",
    ]
    return per_doc * PROMPT_WEIGHT + [truthfulqa.QA_PROMPT, *(mmlu.description(s) for s in mmlu.SUBJECTS)]


def write_tokenizer(dest: Path, texts: list[str]) -> None:
    """A byte-level BPE (no unknown bytes) whose template adds `<s>` by default, as Llama's does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    bos = SPECIAL_TOKENS[1]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(dest)
    # The class name every transformers version resolves (5.x writes its new alias "TokenizersBackend").
    config_path = dest / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE, help="where data/ and tokenizer/ go (default: here)")
    args = parser.parse_args(argv)
    data, tokenizer = args.out / DATA_DIR.name, args.out / TOKENIZER_DIR.name
    for d in (data, tokenizer):
        shutil.rmtree(d, ignore_errors=True)  # no stale splits or files from an older layout
    texts = write_data(data)
    write_tokenizer(tokenizer, prompt_texts() + texts)
    print(f"wrote {data} and {tokenizer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
