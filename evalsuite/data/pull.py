"""`evalsuite data pull`: an offline copy of every split the benchmarks read, with where each came from
(ORIGINS_FILE: the Hub dataset commit, or the file it was copied from, and the copy's sha256), which a
run reading the copy records (evalsuite.data.sources.LocalDirSource.origins)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

from evalsuite.benchmarks.spec import BenchmarkSpec
from evalsuite.data.sources import ORIGINS_FILE, DataSource, load_table, read_origins
from evalsuite.fsio import atomic_write_bytes, atomic_write_json


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
    origins = read_origins(Path(dest))
    read = source.fingerprints()  # what each split was read as: "<dataset>@<commit>" or the file's sha256
    for (target, table), (spec, config, split) in zip(tables, jobs, strict=True):
        buf = io.BytesIO()
        pq.write_table(table, buf)
        data = buf.getvalue()
        atomic_write_bytes(target, data)
        key = f"{spec.dataset}/{config}/{split}"
        origins[key] = {"from": read[key], "sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_json(Path(dest) / ORIGINS_FILE, dict(sorted(origins.items())))
    return [target for target, _ in tables]
