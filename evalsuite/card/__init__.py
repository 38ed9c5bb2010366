"""Model cards: a run's leaderboard results as `model-index` metadata plus the leaderboard's results table,
written into a new or existing README.md (update), read back from any card (read)."""

from evalsuite.card.hub import hub_card
from evalsuite.card.read import CardWarning, read_card
from evalsuite.card.update import (
    eval_results,
    merge_runs,
    render_metrics_table,
    render_model_index,
    update_card_text,
)

__all__ = [
    "CardWarning",
    "eval_results",
    "hub_card",
    "merge_runs",
    "read_card",
    "render_metrics_table",
    "render_model_index",
    "update_card_text",
]
