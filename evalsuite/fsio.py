"""Safe file writes: atomic writes (a temp file in the same directory, fsync, then rename over the target),
fresh directory names that never clobber an earlier one, and a run's own state files opened without
following symbolic links."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalsuite.errors import RunDirError

# What a user's own new files and directories get: no write access for group or others, whatever the
# umask (a run directory, its staging directory and its state are evalsuite's alone to change).
PRIVATE_DIR = 0o700


def link_refused(path: Path) -> RunDirError:
    return RunDirError(
        f"{path}: is a symbolic link where evalsuite keeps its own files; it never writes through a link there "
        "(someone who can write the directory could point it at any file of yours): remove the link and run again"
    )


def open_own(path: Path, flags: int, mode: int = 0o600) -> int:
    """`os.open` of a file evalsuite made itself, refusing a symbolic link in its place (O_NOFOLLOW)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_refused(Path(path)) from None
        raise


def refuse_links(root: Path) -> None:
    """A RunDirError naming the first symbolic link at or under `root` (evalsuite's own tree holds none)."""
    if root.is_symlink():
        raise link_refused(root)
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            if os.path.islink(os.path.join(parent, name)):
                raise link_refused(Path(parent) / name)


def _mode_for(path: Path) -> int:
    """An existing file keeps its mode; a new one gets the usual 0o666 minus the umask (mkstemp uses 0o600)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` whole. A symbolic link there is replaced by a regular file (the link is never
    followed); to write a link's target, pass `resolve_link(path)`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a full disk or a size limit names no file: name the one being written
            raise type(exc)(exc.errno, f"{exc.strerror or exc}; could not write", str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_link(path: Path) -> Path:
    """A user's path that may be a symbolic link (a card, an output directory): the file it names."""
    return Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)


def atomic_write_text(path: Path, text: str) -> None:
    # newline="" semantics: the text is written exactly as given (no \n translation).
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def atomic_write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows)
    atomic_write_text(path, text)


def unique_dir(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`, ... when it exists (two runs in the same second never share one)."""
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def build_dir_once(final: Path, build: Callable[[Path], object]) -> Path:
    """`final`, made by `build(tmp)` in a temp dir beside it and renamed into place, unless it exists: it only
    ever appears by that rename, so a directory that exists is complete and is used as it is."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        # another process finished the same build first; theirs is identical
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
