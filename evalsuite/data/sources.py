"""Where benchmark rows come from: the Hub datasets, or an offline directory in the layout
`DIR/<owner>/<name>/<config>/<split>.parquet` with the Hub datasets' own columns."""

from __future__ import annotations

import functools
import hashlib
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evalsuite.benchmarks.spec import BenchmarkSpec
from evalsuite.errors import ConfigError, DataError
from evalsuite.hub.errors import explain
from evalsuite.hub.repos import snapshot
from evalsuite.paths import display_path

if TYPE_CHECKING:
    import pyarrow as pa

Row = dict[str, Any]
# Written by `evalsuite data pull` beside the copies: "<dataset>/<config>/<split>" -> {"from": where the
# split was read ("<dataset>@<commit>" from the Hub), "sha256": the copy's}.
ORIGINS_FILE = "origins.json"


def read_origins(root: Path) -> dict[str, dict[str, str]]:
    """The origins `data pull` recorded in `root` (none when it wrote none, or the file is unreadable)."""
    import json

    try:
        data = json.loads((Path(root) / ORIGINS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("from"), str) and "sha256" in v}


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes"} for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def check_columns(table: pa.Table, columns: Iterable[str], where: str) -> None:
    if table.num_rows == 0:
        raise DataError(f"{where}: holds no rows; write the split's rows into it")
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {', '.join(missing)} (has {', '.join(table.column_names)}); "
            "the file must keep the Hub dataset's own columns"
        )


class DataSource(Protocol):
    def table(self, dataset: str, config: str, split: str) -> pa.Table: ...
    def describe(self) -> str: ...
    def fingerprints(self) -> dict[str, str]: ...
    def origins(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class LocalDirSource:
    """An offline copy; `evalsuite data pull DIR` writes one."""

    root: Path
    option: str = "--data-dir"  # how the command that reads it names it (`data pull`: --from-dir)
    # "<dataset>/<config>/<split>" -> sha256 of each file read, recorded in the run's provenance.
    _read: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not Path(self.root).is_dir():
            raise ConfigError(f"{self.option} {self.root}: no such directory; create it with `evalsuite data pull DIR`")

    def path(self, dataset: str, config: str, split: str) -> Path:
        return Path(self.root) / dataset / config / f"{split}.parquet"

    def table(self, dataset: str, config: str, split: str) -> pa.Table:
        import pyarrow.parquet as pq

        path = self.path(dataset, config, split)
        if not path.is_file():
            raise DataError(
                f"{path}: missing; the data dir needs {dataset} config {config!r} split {split!r} "
                "there (write it with `evalsuite data pull DIR`)"
            )
        data = path.read_bytes()
        try:
            table = pq.read_table(io.BytesIO(data))
        except Exception as exc:
            raise DataError(f"{path}: not a readable parquet file ({exc}); rewrite it") from exc
        self._read[f"{dataset}/{config}/{split}"] = "sha256:" + hashlib.sha256(data).hexdigest()
        return table

    def describe(self) -> str:
        return f"dir:{display_path(Path(self.root).absolute())}"

    def fingerprints(self) -> dict[str, str]:
        return dict(self._read)

    def origins(self) -> dict[str, str]:
        """Where each split read was pulled from (`data pull`'s record), for the files unchanged since."""
        pulled = read_origins(Path(self.root))
        return {
            key: pulled[key]["from"]
            for key, digest in self._read.items()
            if key in pulled and digest == "sha256:" + pulled[key]["sha256"]
        }


@dataclass(frozen=True)
class HubSource:
    """The Hub datasets, through `datasets.load_dataset`."""

    option: str = "--data-dir"  # the option of the command at hand that reads an offline copy instead
    # "<dataset>/<config>/<split>" -> "<dataset>@<commit sha>", recorded in the run's provenance.
    _read: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def table(self, dataset: str, config: str, split: str) -> pa.Table:
        if _offline():
            make = " (make: DATA_DIR=DIR)" if self.option == "--data-dir" else ""
            raise ConfigError(
                "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set and no data dir was given; "
                f"pass {self.option} DIR{make} with a copy written by `evalsuite data pull DIR`"
            )
        import datasets

        commit = self._commit(dataset)
        try:
            # Pinned to the commit we record: the provenance names exactly the data that was read.
            ds = datasets.load_dataset(dataset, config, split=split, revision=commit)
        except Exception as exc:
            why = explain(exc, dataset, "dataset", commit)
            raise DataError(f"{dataset} config {config!r} split {split!r}: not loaded from the Hub ({why})") from exc
        self._read[f"{dataset}/{config}/{split}"] = f"{dataset}@{commit}"
        # The Arrow table itself, so that `data pull` keeps the Hub's column types exactly.
        return ds.data.table

    @functools.cache  # noqa: B019 - one lookup per dataset id; sources live for one run
    def _commit(self, dataset: str) -> str:
        """The dataset's current commit on the Hub (v1 pinned none; we record the one we read)."""
        fix = f"or run offline with {self.option} DIR, a copy written by `evalsuite data pull DIR`"
        return snapshot(dataset, kind="dataset", fix=fix).commit

    def describe(self) -> str:
        return "hub"

    def fingerprints(self) -> dict[str, str]:
        return dict(self._read)

    def origins(self) -> dict[str, str]:
        return {}  # the files are the Hub's: `fingerprints` names their commits


def source_for(data_dir: str | Path | None, option: str = "--data-dir") -> DataSource:
    """The offline copy at `data_dir` (the command's `option`), else the Hub."""
    return LocalDirSource(Path(data_dir), option) if data_dir else HubSource(option)


def load_table(source: DataSource, spec: BenchmarkSpec, config: str, split: str) -> pa.Table:
    table = source.table(spec.dataset, config, split)
    check_columns(table, spec.columns, f"{spec.dataset}/{config}/{split}")
    return table


def load_rows(source: DataSource, spec: BenchmarkSpec, config: str, split: str) -> list[Row]:
    rows: list[Row] = load_table(source, spec, config, split).to_pylist()
    return rows
