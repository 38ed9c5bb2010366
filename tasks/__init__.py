"""The six Open LLM Leaderboard v1 benchmarks: prompts and scoring hooks, one module each."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # mypy checks every task module against the Task protocol here (the table sees evalsuite.tasks,
    # which mypy reads as this folder only through these relative imports).
    from evalsuite.benchmarks.contract import Task

    from . import arc, gsm8k, hellaswag, mmlu, truthfulqa, winogrande

    _TASKS: tuple[Task, ...] = (arc, gsm8k, hellaswag, mmlu, truthfulqa, winogrande)
