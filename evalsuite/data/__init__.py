"""Benchmark data: where rows come from (sources) and offline copies of them (pull)."""
