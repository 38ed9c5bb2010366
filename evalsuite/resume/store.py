"""An append-only store of answered requests: one JSON line per answer, fsynced in chunks.

Each line is written with a single `write` as soon as the answer exists, so a killed process loses at
most the request it was computing; a torn last line (power loss mid-write) is dropped when the store is
reopened. Keys are hashes of the request under the run's fingerprint digest, so answers computed under
another fingerprint can never be mistaken for this one's.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evalsuite.errors import RunDirError

STORE_FILE = "answers.jsonl"
# fsync after this many answers or seconds, whichever comes first: a crash of the machine (not of the
# process, which loses nothing written) costs at most this much work.
FSYNC_EVERY = 256
FSYNC_SECONDS = 5.0


def request_key(digest: str, request_type: str, arguments: Iterable[Any]) -> str:
    data = json.dumps([digest, request_type, *arguments], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


class AnswerStore:
    """Answers by request key; `put` appends and persists one answer."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.answers: dict[str, Any] = self._read()
        self._fd = self._open(os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._unsynced = 0
        self._last_sync = time.monotonic()

    def _open(self, flags: int) -> int:
        try:
            return os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise self._error("could not open", exc) from exc

    def _error(self, what: str, exc: OSError) -> RunDirError:
        return RunDirError(
            f"{self.path}: {what} ({exc.strerror or exc}); the answers written so far are kept: free space or "
            "fix the permissions, then continue with --resume"
        )

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        answers: dict[str, Any] = {}
        good = 0  # bytes up to the last complete, valid line
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
                answers[record["k"]] = record["a"]
            except (ValueError, KeyError, TypeError):
                break
            good += len(line)
        if good < len(data):
            # A torn tail would corrupt the next line appended after it: cut it off first.
            os.truncate(self.path, good)
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
        line = json.dumps({"k": key, "a": answer}, ensure_ascii=False, allow_nan=False) + "\n"
        data = line.encode("utf-8")
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
