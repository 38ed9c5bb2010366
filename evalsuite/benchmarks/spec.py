"""What one benchmark of the table is: its dataset, few-shot setup, metric, card entry and task hooks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from evalsuite.benchmarks.contract import Task
from evalsuite.errors import ConfigError

SAMPLINGS = ("random", "first_n")
HOOKS = ("process_doc", "description", "shot", "requests", "score")  # the Task protocol's methods


@dataclass(frozen=True)
class CardEntry:
    """How the leaderboard wrote this benchmark in a model card (spec model-card.md §1.2)."""

    dataset_type: str
    config: str | None
    split: str
    metric_name: str | None
    # The benchmark's task in the Hub's eval results (`.eval_results/*.yaml`, dataset.task_id): the id the
    # dataset's own eval.yaml gives its task; "default" (the spec's id for a dataset's only task) where the
    # dataset defines none.
    hub_task_id: str = "default"


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark of the table; checked on construction, so a bad entry fails at import, by name."""

    name: str  # our key, also samples/<name>.jsonl
    v1_task: str  # the task name in the v1 harness (reference outputs use it)
    title: str  # the leaderboard's display name, as in the card
    dataset: str  # Hub dataset id
    configs: tuple[str, ...]  # one v1 task per config, each with its own shuffle; scores macro-averaged
    eval_split: str
    fewshot_split: str | None
    num_fewshot: int
    sampling: Literal["random", "first_n"]  # v1: rnd.sample(train, k) per doc, or dev[:k]
    metric: str
    columns: tuple[str, ...]  # the dataset columns the prompts read
    task: Task  # prompt and scoring hooks: a module of tasks/ (mypy checks it against the protocol)
    card: CardEntry
    binary: bool = True  # the metric is 0/1 per document (paired tests use McNemar); mc2 is continuous
    in_average: bool = True  # part of the leaderboard average ("Avg." of the card)
    has_subject_drilldown: bool = False  # per-config scores are worth a table of their own (MMLU's subjects)

    def __post_init__(self) -> None:
        where = f"benchmark table entry {self.name!r}"
        if not re.fullmatch(r"[a-z0-9_]+", self.name):
            raise ConfigError(f"{where}: the name must be lower-case letters, digits or _ (it names files)")
        if not self.configs or len(set(self.configs)) != len(self.configs):
            raise ConfigError(f"{where}: configs must be one or more distinct dataset configs")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"{where}: sampling {self.sampling!r} must be one of {', '.join(SAMPLINGS)}")
        if self.num_fewshot < 0 or (self.num_fewshot and not self.fewshot_split):
            raise ConfigError(f"{where}: num_fewshot {self.num_fewshot} needs a fewshot_split (or 0 shots)")
        missing = [hook for hook in HOOKS if not callable(getattr(self.task, hook, None))]
        if missing:
            raise ConfigError(f"{where}: its task lacks the hooks {', '.join(missing)} (see benchmarks/contract.py)")

    def splits(self) -> tuple[str, ...]:
        return (self.eval_split,) + ((self.fewshot_split,) if self.num_fewshot and self.fewshot_split else ())
