"""Replacing a file evalsuite updates in place (a model card, its .eval_results files) without losing what
was there: the version replaced is kept as `<file>.bak`, and the first version evalsuite replaced as
`<file>.orig`, never overwritten."""

from __future__ import annotations

from pathlib import Path

from evalsuite.fsio import atomic_write_bytes

BACKUP_SUFFIX = ".bak"  # the version a write replaced
ORIGINAL_SUFFIX = ".orig"  # the first version evalsuite replaced there: never overwritten


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def replace_keeping_old(path: Path, text: str) -> bool:
    """Write `text` to `path` atomically, what was there first copied to `<path>.bak` and, the first time,
    to `<path>.orig` as well (so that updating twice never loses the version before evalsuite; where an
    earlier release left only a `.bak`, that older version becomes the `.orig`). Returns False, writing
    nothing, when the file holds `text` already."""
    data = text.encode("utf-8")
    if path.is_file():
        old = path.read_bytes()
        if old == data:
            return False
        original, backup = path.with_name(path.name + ORIGINAL_SUFFIX), backup_path(path)
        if not original.exists():
            atomic_write_bytes(original, backup.read_bytes() if backup.is_file() else old)
        atomic_write_bytes(backup, old)
    atomic_write_bytes(path, data)
    return True
