"""Comparing runs and published cards: tables and paired significance (comparison, stats), then figures
(plots) and the written report (report), which depend on them one way."""

from evalsuite.compare.comparison import Comparison, compare, find_runs, labels, load, percent
from evalsuite.compare.report import write

__all__ = ["Comparison", "compare", "find_runs", "labels", "load", "percent", "write"]
