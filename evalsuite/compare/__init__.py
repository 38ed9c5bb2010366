"""Comparing runs and published cards: tables and paired significance (comparison, stats), figures (plots)."""

from evalsuite.compare.comparison import Comparison, compare, find_runs, labels, load, percent

__all__ = ["Comparison", "compare", "find_runs", "labels", "load", "percent"]
