"""An append-only store of answered requests: one JSON line per answer, fsynced in chunks.

Each line is written with a single `write` as soon as the answer exists, so a killed process loses at
most the request it was computing. Each line carries the digest of the fingerprint it was made under
and a checksum of its content: a line that does not parse, was altered, holds a non-finite number or
belongs to another fingerprint is skipped on its own (and counted), never the lines after it; a torn
last line (power loss mid-write) is cut off before anything is appended. Keys are hashes of the request
under the fingerprint digest, so answers computed under another fingerprint are never mistaken for
this one's. The file is opened without following a symbolic link.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evalsuite.errors import RunDirError
from evalsuite.fsio import open_own

STORE_FILE = "answers.jsonl"
# fsync after this many answers or seconds, whichever comes first: a crash of the machine (not of the
# process, which loses nothing written) costs at most this much work.
FSYNC_EVERY = 256
FSYNC_SECONDS = 5.0


def request_key(digest: str, request_type: str, arguments: Iterable[Any]) -> str:
    data = json.dumps([digest, request_type, *arguments], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _checksum(key: str, answer: Any, digest: str) -> str:
    data = json.dumps([key, answer, digest], ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]


def _is_answer(value: Any) -> bool:
    """What a backend answers: a text, a finite log-likelihood, or [finite log-likelihood, is_greedy]."""
    if isinstance(value, str):
        return True
    if isinstance(value, list):
        return len(value) == 2 and _is_answer(value[0]) and isinstance(value[1], bool) and not isinstance(value[0], str)
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a stored answer")  # NaN, Infinity: never written by evalsuite


def _parse(line: bytes, digest: str) -> tuple[str, Any] | None:
    """(key, answer) of a sound line made under `digest`; None for anything else."""
    try:
        record = json.loads(line, parse_constant=_no_constant)
        key, answer, made_under, check = record["k"], record["a"], record["f"], record["c"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(key, str) and made_under == digest and _is_answer(answer)):
        return None
    return (key, answer) if check == _checksum(key, answer, digest) else None


class AnswerStore:
    """Answers by request key under one fingerprint `digest`; `put` appends and persists one answer.
    `skipped`: the line numbers (1-based) of unsound lines passed over when the store was opened."""

    def __init__(self, path: Path, digest: str) -> None:
        self.path = Path(path)
        self.digest = digest
        self.skipped: list[int] = []
        self._fd = self._open()
        self.answers: dict[str, Any] = self._read()
        self._unsynced = 0
        self._last_sync = time.monotonic()

    def _open(self) -> int:
        try:
            return open_own(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        except OSError as exc:
            raise self._error("could not open", exc) from exc

    def _error(self, what: str, exc: OSError) -> RunDirError:
        return RunDirError(
            f"{self.path}: {what} ({exc.strerror or exc}); the answers written so far are kept: free space or "
            "fix the permissions, then continue with --resume"
        )

    def _read(self) -> dict[str, Any]:
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0) if size else b""
        answers: dict[str, Any] = {}
        lines = data.splitlines(keepends=True)
        for number, line in enumerate(lines, 1):
            if not line.endswith(b"\n"):  # a torn tail would corrupt the next line appended after it
                os.ftruncate(self._fd, len(data) - len(line))
                break
            parsed = _parse(line, self.digest)
            if parsed is None:
                self.skipped.append(number)
            else:
                answers.setdefault(*parsed)
        return answers

    def __len__(self) -> int:
        return len(self.answers)

    def __contains__(self, key: str) -> bool:
        return key in self.answers

    def get(self, key: str) -> Any:
        return self.answers.get(key)

    def put(self, key: str, answer: Any) -> None:
        if key in self.answers:
            return
        record = {"k": key, "a": answer, "f": self.digest, "c": _checksum(key, answer, self.digest)}
        data = (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        try:
            while data:  # a write may stop short (e.g. at a file size limit); the rest follows or fails
                data = data[os.write(self._fd, data) :]
        except OSError as exc:
            raise self._error("could not append an answer", exc) from exc
        self.answers[key] = answer
        self._unsynced += 1
        if self._unsynced >= FSYNC_EVERY or time.monotonic() - self._last_sync >= FSYNC_SECONDS:
            self.sync()

    def sync(self) -> None:
        if self._unsynced:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise self._error("could not sync", exc) from exc
        self._unsynced = 0
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.sync()
        finally:
            os.close(self._fd)
            self._fd = -1
