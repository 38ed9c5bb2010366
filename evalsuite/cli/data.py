"""`evalsuite data pull`: offline copies of the benchmark datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

from evalsuite.benchmarks.table import BENCHMARK_NAMES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="offline copies of the benchmark datasets",
        description="Offline copies of the benchmark datasets, for `evalsuite run --data-dir` on a machine "
        "without the Hub.",
    )
    dsub = p.add_subparsers(dest="data_command", required=True)
    pull = dsub.add_parser(
        "pull",
        help="download every split the benchmarks read into DIR/<owner>/<name>/<config>/<split>.parquet",
        description="Download every split the benchmarks read into DIR/<owner>/<name>/<config>/<split>.parquet "
        "(from the Hub at the datasets' current commits, or --from-dir another copy), with origins.json "
        "recording each split's commit or source and sha256; `evalsuite run --data-dir DIR` then reads it.",
    )
    pull.add_argument("dir", help="destination directory")
    pull.add_argument("--benchmarks", help=f"comma-separated subset of: {','.join(BENCHMARK_NAMES)}")
    pull.add_argument("--from-dir", help="copy from another offline directory instead of the Hub")
    pull.set_defaults(func=cmd_data_pull)


def cmd_data_pull(args: argparse.Namespace) -> int:
    from evalsuite.benchmarks.table import parse_names, select
    from evalsuite.data.pull import pull
    from evalsuite.data.sources import source_for

    written = pull(Path(args.dir), select(parse_names(args.benchmarks)), source_for(args.from_dir, "--from-dir"))
    print(f"wrote {len(written)} files under {args.dir}")
    return 0
