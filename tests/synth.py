"""Helpers for tests that write their own synthetic data in the offline layout and replay v1's draws."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def write_split(root: Path, dataset: str, config: str, split: str, rows: list[dict[str, Any]]) -> Path:
    """Write rows as DIR/<owner>/<name>/<config>/<split>.parquet; returns the file."""
    path = root / dataset / config / f"{split}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def v1_draws(eval_rows: list[Any], train_rows: list[Any], k: int) -> list[tuple[Any, list[Any]]]:
    """Spec §10.2, replayed on the docs themselves: one Random(42) shuffles the eval docs, then samples
    k train docs per doc in that order."""
    rnd = random.Random()
    rnd.seed(42)
    docs = list(eval_rows)
    rnd.shuffle(docs)
    return [(doc, rnd.sample(train_rows, k)) for doc in docs]
