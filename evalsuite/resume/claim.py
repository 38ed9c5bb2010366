"""A run's exclusive claim on its output directory, and the unfinished runs it may continue.

A run writes into the staging directory `.<name>.partial` beside its target and renames it into place
when complete, so the target is either complete or absent. The staging directory is created under a
temporary name with its lock already held, then renamed: two runs can never both claim it. The lock
(`flock`) dies with its process, kill -9 included, so a staging directory whose lock is free is an
unfinished run that `--resume` may continue.

Nothing here follows a symbolic link inside a staging directory: the lock and the answers are opened
with O_NOFOLLOW, a staging directory holding a link is refused (or, when it would only be scanned, left
alone), and the staging directory and its state are created without write access for anyone else.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.errors import ConfigError, OutputExistsError, RunDirError
from evalsuite.fsio import PRIVATE_DIR, atomic_write_json, link_refused, open_own, refuse_links
from evalsuite.resume.fingerprint import RunFingerprint
from evalsuite.resume.store import STORE_FILE

STATE_DIR = ".resume"  # inside the staging directory; removed once the run is complete
LOCK_FILE = "lock"
COMMAND_FILE = "command.json"


def stage_of(final: Path) -> Path:
    return final.parent / f".{final.name}.partial"


def final_of(stage: Path) -> Path:
    return stage.parent / stage.name[1 : -len(".partial")]


def answers_in(stage: Path) -> int:
    """How many answers the staging directory's store holds (complete lines)."""
    path = stage / STATE_DIR / STORE_FILE
    if path.is_symlink() or not path.is_file():
        return 0
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.endswith(b"\n"))


def read_command(stage: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((stage / STATE_DIR / COMMAND_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def command_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """The first setting that differs, its values as a user reads them: `threads was unset, now 1`."""
    return RunFingerprint(dict(new)).differs_from(RunFingerprint(dict(old)))


def _state_dir(stage: Path) -> Path:
    """The stage's `.resume/`, made if missing; a RunDirError when the stage or it is a symbolic link."""
    state = stage / STATE_DIR
    for path in (stage, state):
        if path.is_symlink():
            raise link_refused(path)
    state.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    if state.is_symlink():  # made a link between the check and mkdir
        raise link_refused(state)
    return state


def _try_lock(stage: Path) -> int | None:
    """An fd holding the stage's lock, or None when another live process holds it; a RunDirError when
    the lock (or a directory above it in the stage) is a symbolic link."""
    fd = open_own(_state_dir(stage) / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _holder(stage: Path) -> str:
    with contextlib.suppress(OSError, RunDirError):
        fd = open_own(stage / STATE_DIR / LOCK_FILE, os.O_RDONLY)
        try:
            pid = os.read(fd, 32).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
        if pid.isdigit():
            return f" (pid {pid})"
    return ""


@dataclass
class Claim:
    """The held claim: write into `stage`; `finish()` makes it the run directory `final`."""

    final: Path
    stage: Path
    fd: int
    made: tuple[Path, ...] = ()  # parent directories this claim created (removed again if abandoned)

    @property
    def state(self) -> Path:
        return self.stage / STATE_DIR

    def finish(self) -> None:
        if self.final.is_dir() and not any(self.final.iterdir()):
            self.final.rmdir()  # an empty directory the user made for us
        if self.final.exists() or self.final.is_symlink():
            raise OutputExistsError(
                f"{self.final}: appeared while the run was going; the complete run is kept in {self.stage}, "
                "move it into place yourself"
            )
        self.stage.rename(self.final)
        shutil.rmtree(self.final / STATE_DIR, ignore_errors=True)
        self.release()

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def abandon_if_empty(self) -> None:
        """Drop the staging directory when nothing in it is worth resuming (e.g. bad input found early)."""
        if answers_in(self.stage) == 0 and not any((self.stage / "samples").glob("*.jsonl")):
            shutil.rmtree(self.stage, ignore_errors=True)
            for parent in self.made:  # deepest first
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only when empty
        self.release()


def _create(final: Path, command: Mapping[str, Any]) -> Claim | None:
    """Create `final`'s staging directory, lock held; None when another run got there first."""
    made = tuple(p for p in [final.parent, *final.parent.parents] if not p.exists())
    stage = stage_of(final)
    tmp = final.parent / f"{stage.name}.{os.getpid()}.new"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o755)  # less the umask: never writable by others, whatever the umask allows
        (tmp / STATE_DIR).mkdir(mode=PRIVATE_DIR)
    except OSError as exc:  # a location the permission checks let through (/proc, a read-only mount)
        shutil.rmtree(tmp, ignore_errors=True)
        for parent in made:  # deepest first
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise ConfigError(
            f"{final}: the run directory cannot be created there ({exc.strerror or exc}); "
            "choose a location you can write to with --output-dir"
        ) from exc
    fd = _try_lock(tmp)
    assert fd is not None  # nobody else knows this directory
    atomic_write_json(tmp / STATE_DIR / COMMAND_FILE, dict(command))
    try:
        tmp.rename(stage)  # fails when the stage exists and is not empty: someone else claimed it
    except OSError:
        os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    if final.exists() and not (final.is_dir() and not any(final.iterdir())):
        # A run finished into this target between our checks: leave it alone.
        os.close(fd)
        shutil.rmtree(stage, ignore_errors=True)
        return None
    return Claim(final, stage, fd, made=made)


def _unfinished_message(final: Path, stage: Path) -> str:
    done = sorted(p.stem for p in (stage / "samples").glob("*.jsonl"))
    finished = f", complete benchmarks: {', '.join(done)}" if done else ""
    return (
        f"--output-dir {final}: holds an unfinished run ({answers_in(stage)} requests answered{finished}); "
        "continue it with --resume, or discard it and start over with --fresh"
    )


def _clear(stage: Path) -> None:
    """Empty the stage but for its lock: links are removed, never followed."""
    for entry in stage.iterdir():
        if entry.name != STATE_DIR:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for entry in (stage / STATE_DIR).iterdir():
        if entry.name != LOCK_FILE:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def holds_work(stage: Path) -> bool:
    """Anything an earlier attempt computed in the stage: answers, samples or completed benchmarks."""
    return (
        answers_in(stage) > 0
        or any((stage / "samples").glob("*.jsonl"))
        or any((stage / STATE_DIR / "done").glob("*.json"))
    )


def claim_dir(final: Path, command: Mapping[str, Any], *, resume: bool, fresh: bool) -> Claim:
    """Claim the directory the user named; refuses at once when another run is writing it."""
    stage = stage_of(final)
    if stage.is_symlink():
        raise link_refused(stage)
    if stage.is_dir():
        fd = _try_lock(stage)
        if fd is None:
            raise OutputExistsError(
                f"--output-dir {final}: another evalsuite run{_holder(stage)} is writing it right now; "
                "wait for it to finish or choose another directory"
            )
        try:
            if not fresh:
                refuse_links(stage)  # --fresh removes them (never what they point to)
            if fresh or (not resume and not holds_work(stage)):  # nothing answered (a kill -9 early): no question
                _clear(stage)
                atomic_write_json(stage / STATE_DIR / COMMAND_FILE, dict(command))
                return Claim(final, stage, fd)
            if not resume:
                raise RunDirError(_unfinished_message(final, stage))
            old = read_command(stage)
            difference = None if old is None else command_difference(old, command)
            if old is None or difference:
                why = difference or "its command record is missing"
                raise RunDirError(
                    f"--output-dir {final}: the unfinished run there is another command ({why}); "
                    "repeat its options to continue it, or start over with --fresh"
                )
        except BaseException:
            os.close(fd)
            raise
        return Claim(final, stage, fd)
    claim = _create(final, command)
    if claim is None:
        raise OutputExistsError(
            f"--output-dir {final}: another evalsuite run claimed it a moment ago; choose another directory"
        )
    if resume:
        print(f"note: {final} holds no unfinished run; starting a new one", file=sys.stderr)
    return claim


def unfinished_runs(parent: Path, command: Mapping[str, Any]) -> Iterator[Path]:
    """Staging directories under `parent` left by the same command, newest first (a link is none)."""
    if not parent.is_dir():
        return
    stages = [p for p in parent.glob(".*.partial") if p.is_dir() and not p.is_symlink()]
    for stage in sorted(stages, key=lambda p: p.stat().st_mtime, reverse=True):
        if read_command(stage) == dict(command):
            yield stage


def _lock_unless_linked(stage: Path) -> int | None:
    """`_try_lock`, but a stage holding a symbolic link is passed over (with a note), not an error: a
    run that only scans the parent directory must not stop on, nor write through, someone else's link."""
    try:
        refuse_links(stage)
        return _try_lock(stage)
    except RunDirError as exc:
        print(f"note: {stage} left alone: {exc}", file=sys.stderr)
        return None


def _is_idle(stage: Path) -> bool:
    """No live run holds the stage (taking the lock for a moment tells)."""
    fd = _lock_unless_linked(stage)
    if fd is None:
        return False
    os.close(fd)
    return True


def claim_default(base: Path, command: Mapping[str, Any], *, resume: bool) -> Claim:
    """Claim `base` (a new timestamped directory), `base-2`, ... or, with `resume`, continue the newest
    unfinished run of the same command under the same parent."""
    earlier = list(unfinished_runs(base.parent, command))
    if resume:
        for stage in earlier:
            fd = _lock_unless_linked(stage)
            if fd is not None:
                return Claim(final_of(stage), stage, fd)
        print("note: no unfinished run of this command to resume; starting a new one", file=sys.stderr)
    elif earlier := [stage for stage in earlier if _is_idle(stage)]:
        print(
            f"note: {final_of(earlier[0])} is an unfinished run of this command ({answers_in(earlier[0])} requests "
            "answered); this starts a new run, --resume would have continued it",
            file=sys.stderr,
        )
    n = 1
    while True:
        final = base if n == 1 else base.with_name(f"{base.name}-{n}")
        n += 1
        if final.exists() or final.is_symlink() or stage_of(final).exists() or stage_of(final).is_symlink():
            continue
        claim = _create(final, command)
        if claim is not None:
            return claim
