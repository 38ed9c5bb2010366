"""Model-card metadata: the model-index block and the leaderboard's metrics table (first version)."""

from __future__ import annotations

from evalsuite.results import RunResult
from evalsuite.specs import BENCHMARKS


def eval_results(run: RunResult, source_url: str | None = None, source_name: str = "evalsuite") -> list:
    from huggingface_hub import EvalResult

    out = []
    for spec in BENCHMARKS:
        score = run.scores.get(spec.name)
        if score is None:
            continue
        out.append(
            EvalResult(
                task_type="text-generation",
                task_name="Text Generation",
                dataset_type=spec.card.dataset_type,
                dataset_name=spec.title,
                dataset_config=spec.card.config,
                dataset_split=spec.card.split,
                dataset_args={"num_few_shot": spec.num_fewshot},
                metric_type=spec.metric,
                metric_value=round(score.percent, 2),
                metric_name=spec.card.metric_name,
                source_name=source_name if source_url else None,
                source_url=source_url,
            )
        )
    return out


def render_model_index(run: RunResult, source_url: str | None = None) -> str:
    from huggingface_hub import ModelCardData

    data = ModelCardData(model_name=run.model.id.rstrip("/").split("/")[-1], eval_results=eval_results(run, source_url))
    return data.to_yaml() + "\n"


def render_metrics_table(run: RunResult, details: str | None = None) -> str:
    rows = [("Avg.", run.average)] + [(s.title, run.scores[s.name].value if s.name in run.scores else None) for s in BENCHMARKS]
    lines = ["|             Metric              |Value|", "|---------------------------------|----:|"]
    lines += [f"|{name:<33}|{100 * v:5.2f}|" for name, v in rows if v is not None]
    return "\n".join(lines) + "\n"
