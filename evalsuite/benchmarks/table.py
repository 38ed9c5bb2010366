"""The six v1 benchmarks as one declarative table; runner, aggregator and card writer loop over it."""

from __future__ import annotations

from collections.abc import Sequence

from evalsuite.benchmarks.spec import BenchmarkSpec, CardEntry
from evalsuite.errors import ConfigError
from evalsuite.tasks import arc, gsm8k, hellaswag, mmlu, truthfulqa, winogrande

BENCHMARKS: tuple[BenchmarkSpec, ...] = (
    BenchmarkSpec(
        name="arc",
        v1_task="arc_challenge",
        title="AI2 Reasoning Challenge (25-Shot)",
        dataset="allenai/ai2_arc",
        configs=("ARC-Challenge",),
        eval_split="test",
        fewshot_split="train",
        num_fewshot=25,
        sampling="random",
        metric="acc_norm",
        columns=("question", "choices", "answerKey"),
        task=arc,
        card=CardEntry("ai2_arc", "ARC-Challenge", "test", "normalized accuracy"),
    ),
    BenchmarkSpec(
        name="hellaswag",
        v1_task="hellaswag",
        title="HellaSwag (10-Shot)",
        dataset="Rowan/hellaswag",
        configs=("default",),
        eval_split="validation",
        fewshot_split="train",
        num_fewshot=10,
        sampling="random",
        metric="acc_norm",
        columns=("activity_label", "ctx_a", "ctx_b", "endings", "label"),
        task=hellaswag,
        card=CardEntry("hellaswag", None, "validation", "normalized accuracy"),
    ),
    BenchmarkSpec(
        name="mmlu",
        v1_task="mmlu",
        title="MMLU (5-Shot)",
        dataset="cais/mmlu",
        configs=mmlu.SUBJECTS,
        eval_split="test",
        fewshot_split="dev",
        num_fewshot=5,
        sampling="first_n",
        metric="acc",
        columns=("question", "choices", "answer"),
        task=mmlu,
        card=CardEntry("cais/mmlu", "all", "test", "accuracy"),
        has_subject_drilldown=True,
    ),
    BenchmarkSpec(
        name="truthfulqa",
        v1_task="truthfulqa_mc",
        title="TruthfulQA (0-shot)",
        dataset="truthfulqa/truthful_qa",
        configs=("multiple_choice",),
        eval_split="validation",
        fewshot_split=None,
        num_fewshot=0,
        sampling="random",
        metric="mc2",
        columns=("question", "mc1_targets", "mc2_targets"),
        task=truthfulqa,
        card=CardEntry("truthful_qa", "multiple_choice", "validation", None),
        binary=False,
    ),
    BenchmarkSpec(
        name="winogrande",
        v1_task="winogrande",
        title="Winogrande (5-shot)",
        dataset="allenai/winogrande",
        configs=("winogrande_xl",),
        eval_split="validation",
        fewshot_split="train",
        num_fewshot=5,
        sampling="random",
        metric="acc",
        columns=("sentence", "option1", "option2", "answer"),
        task=winogrande,
        card=CardEntry("winogrande", "winogrande_xl", "validation", "accuracy"),
    ),
    BenchmarkSpec(
        name="gsm8k",
        v1_task="gsm8k",
        title="GSM8k (5-shot)",
        dataset="openai/gsm8k",
        configs=("main",),
        eval_split="test",
        fewshot_split="train",
        num_fewshot=5,
        sampling="random",
        metric="acc",
        columns=("question", "answer"),
        task=gsm8k,
        card=CardEntry("gsm8k", "main", "test", "accuracy", hub_task_id="gsm8k"),  # openai/gsm8k's eval.yaml
    ),
)

if len({b.name for b in BENCHMARKS}) != len(BENCHMARKS):
    raise ConfigError("benchmark table: two entries share a name; names key samples/<name>.jsonl")

BENCHMARK_NAMES: tuple[str, ...] = tuple(b.name for b in BENCHMARKS)
BY_NAME: dict[str, BenchmarkSpec] = {b.name: b for b in BENCHMARKS}


def get_spec(name: str) -> BenchmarkSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown benchmark {name!r}; valid benchmarks are: {', '.join(BENCHMARK_NAMES)}") from None


def parse_names(text: str | None) -> tuple[str, ...] | None:
    """`--benchmarks arc,mmlu` -> ("arc", "mmlu"); None (not given) -> None (all six)."""
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ConfigError(
            f"--benchmarks {text!r} names no benchmark; give a comma-separated subset of "
            f"{','.join(BENCHMARK_NAMES)}, or leave it out for all six"
        )
    return names


def select(names: Sequence[str] | None, table: Sequence[BenchmarkSpec] = BENCHMARKS) -> tuple[BenchmarkSpec, ...]:
    """The specs of the named benchmarks in table order (None or empty: all of them); unknown names fail."""
    if not names:
        return tuple(table)
    known = [b.name for b in table]
    for n in names:
        if n not in known:
            raise ConfigError(f"unknown benchmark {n!r}; valid benchmarks are: {', '.join(known)}")
    return tuple(b for b in table if b.name in names)
