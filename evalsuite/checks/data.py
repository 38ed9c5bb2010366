"""Row checks before the model loads: a null cell that a prompt or a choice reads would become the text
"None" in the prompt or a crash after hours of model time; an empty choice list has nothing to score.

Empty strings pass: v1 accepted them (an empty choice is still a request, " " after the space).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from evalsuite.errors import DataError


def _faults(value: Any, path: str) -> Iterable[tuple[str, str]]:
    """(cell path, what is wrong) for nulls anywhere inside the value and empty lists."""
    if value is None:
        yield path, "is null"
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _faults(inner, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        if not value:
            yield path, "is an empty list"
        for i, inner in enumerate(value):
            yield from _faults(inner, f"{path}[{i}]")


def check_rows(rows: Iterable[Mapping[str, Any]], columns: Iterable[str], where: str) -> None:
    """A one-line DataError naming the first row and column with a null cell or an empty list."""
    columns = tuple(columns)
    for i, row in enumerate(rows):
        for column in columns:
            for cell, fault in _faults(row.get(column), column):
                raise DataError(
                    f"{where} row {i}: column {cell} {fault}; the prompts read it: fill it in or drop the row"
                )
