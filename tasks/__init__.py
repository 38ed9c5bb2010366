"""The six Open LLM Leaderboard v1 benchmarks: prompts and scoring hooks, one module each."""
