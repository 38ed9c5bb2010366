"""notebooks/compare_merges.ipynb: committed clean, no logic of its own, and it runs on real runs."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "compare_merges.ipynb"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("scores.png", "radar.png", "deltas.png", "mmlu_subjects.png")


def code_cells() -> list[str]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source


def test_notebook_holds_no_logic_of_its_own():
    # No functions, classes or arithmetic on scores: every number comes from evalsuite.compare.
    for source in code_cells():
        for node in ast.walk(ast.parse(source)):
            assert not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Lambda), source
            assert not (isinstance(node, ast.BinOp) and not isinstance(node.op, ast.Div)), source  # / joins paths
    assert any("compare.compare(" in source for source in code_cells())


@pytest.mark.slow
def test_notebook_runs_on_real_runs_and_writes_its_figures(tiny_run, tiny_dense_run, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    figures = tmp_path / "figures"
    monkeypatch.setenv("EVALSUITE_RUNS", f"{tiny_run} {tiny_dense_run}")
    monkeypatch.setenv("EVALSUITE_FIGURES", str(figures))
    monkeypatch.setenv("EVALSUITE_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # execute() raises CellExecutionError, with the failing cell and traceback, when a cell fails.
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    for png in FIGURES:
        assert (figures / png).read_bytes().startswith(PNG_MAGIC)
    assert "## Paired significance" in (figures / "compare.md").read_text(encoding="utf-8")
    shown = [out for cell in nb.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    routed = [run for run in (tiny_run, tiny_dense_run) if (run / "router_stats.parquet").exists()]
    router_pngs = list((figures / "router").glob("*/*.png"))
    assert len(shown) == len(FIGURES) + len(router_pngs)
    assert bool(router_pngs) == bool(routed)  # the MoE run's routing is shown once it has statistics
    assert not (tmp_path / "results").exists()  # EVALSUITE_FIGURES was used, not the default
