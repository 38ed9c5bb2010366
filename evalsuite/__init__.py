"""evalsuite: Open LLM Leaderboard v1 evaluation, model cards, comparison and MoE router statistics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evalsuite")  # pyproject.toml is the one place the version is written
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
