"""A comparison on disk: compare.md and the PNG figures in a new directory (default results/compare/<UTC time>)."""

from __future__ import annotations

from pathlib import Path

from evalsuite.compare.comparison import COMPARE_DIR, Comparison
from evalsuite.compare.plots import write_figures
from evalsuite.errors import OutputExistsError
from evalsuite.fsio import atomic_write_text, unique_dir
from evalsuite.pipeline.rundir import RESULTS_ROOT, staged, utc_stamp

REPORT_FILE = "compare.md"


def default_output_dir(results_root: Path = RESULTS_ROOT) -> Path:
    return unique_dir(results_root / COMPARE_DIR / utc_stamp())


def write(cmp: Comparison, out_dir: str | Path | None = None, *, results_root: str | Path = RESULTS_ROOT) -> Path:
    """Write compare.md and the figures into a new directory (default results/compare/<UTC timestamp>)."""
    final = Path(out_dir) if out_dir else default_output_dir(Path(results_root))
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise OutputExistsError(
            f"{final}: already exists and is not empty (an earlier comparison?); "
            "choose a new --output-dir or leave it unset for results/compare/<UTC timestamp>"
        )
    with staged(final) as stage:
        figures = write_figures(cmp, stage)
        atomic_write_text(stage / REPORT_FILE, cmp.to_markdown(figures={k: p.name for k, p in figures.items()}))
    return final
