"""What one benchmark of the table is: its dataset, few-shot setup, metric, card entry and task hooks."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Literal


@dataclass(frozen=True)
class CardEntry:
    """How the leaderboard wrote this benchmark in a model card (spec model-card.md §1.2)."""

    dataset_type: str
    config: str | None
    split: str
    metric_name: str | None


@dataclass(frozen=True)
class BenchmarkSpec:
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
    task: ModuleType  # prompt and scoring hooks (evalsuite.benchmarks.contract.Task)
    card: CardEntry
    binary: bool = True  # the metric is 0/1 per document (paired tests use McNemar); mc2 is continuous

    def splits(self) -> tuple[str, ...]:
        return (self.eval_split,) + ((self.fewshot_split,) if self.num_fewshot and self.fewshot_split else ())
