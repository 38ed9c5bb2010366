"""`evalsuite data pull`: an offline copy of every split the benchmarks read."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from evalsuite.benchmarks.spec import BenchmarkSpec
from evalsuite.data.sources import DataSource, load_table
from evalsuite.fsio import atomic_write_bytes


def pull(dest: Path, specs: Sequence[BenchmarkSpec], source: DataSource, progress: bool = True) -> list[Path]:
    """Copy every split the benchmarks read from `source` into `dest` in the offline layout."""
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    jobs = [(spec, config, split) for spec in specs for config in spec.configs for split in spec.splits()]
    # Everything is read (and checked) before anything is written: a failure leaves DIR as it was.
    tables = []
    with tqdm(jobs, desc="data pull", unit="split", disable=not progress) as bar:
        for spec, config, split in bar:
            target = Path(dest) / spec.dataset / config / f"{split}.parquet"
            tables.append((target, load_table(source, spec, config, split)))
    for target, table in tables:
        buf = io.BytesIO()
        pq.write_table(table, buf)
        atomic_write_bytes(target, buf.getvalue())
    return [target for target, _ in tables]
