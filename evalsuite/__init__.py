"""evalsuite: Open LLM Leaderboard v1 evaluation, model cards, comparison and MoE router statistics."""

__version__ = "0.1.0"
