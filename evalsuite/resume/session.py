"""One run's resumable state in its staging directory: the claim, the fingerprint, the answer store,
and each benchmark's outcome as it completes.

Layout of the staging directory (the run directory once complete, less `.resume/`):
  samples/<benchmark>.jsonl        written when the benchmark completes (its final place)
  .resume/command.json             the options that make two invocations "the same command"
  .resume/fingerprint.json         what decides the answers (evalsuite.resume.fingerprint)
  .resume/budget.json              the batching budget the first attempt chose (reused by the next ones)
  .resume/answers.jsonl            every answered request (evalsuite.resume.store)
  .resume/done/<benchmark>.json    the benchmark's score: marks it complete
  .resume/router/<benchmark>.parquet  its router counts (MoE models)
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from evalsuite.errors import EvalsuiteError, RunDirError
from evalsuite.fsio import atomic_write_bytes, atomic_write_json
from evalsuite.results import BenchmarkScore, read_samples, samples_path
from evalsuite.resume.claim import Claim, answers_in, claim_default, claim_dir, holds_work
from evalsuite.resume.fingerprint import RunFingerprint
from evalsuite.resume.signals import Interrupted, stop_cleanly
from evalsuite.resume.store import STORE_FILE, AnswerStore

if TYPE_CHECKING:
    from evalsuite.benchmarks.spec import BenchmarkSpec
    from evalsuite.engine.base import Backend, RouterCounter
    from evalsuite.results import BenchmarkOutcome
    from evalsuite.resume.lm import ResumableBackend

FINGERPRINT_FILE = "fingerprint.json"
BUDGET_FILE = "budget.json"


class RunSession:
    """`with RunSession(...) as s:` claims the output directory and stops cleanly on SIGTERM/SIGINT;
    leaving the block on an error keeps whatever was answered for `--resume`."""

    def __init__(
        self, output_dir: Path | None, default_base: Path, command: Mapping[str, Any], *, resume: bool, fresh: bool
    ) -> None:
        self._args = (output_dir, default_base, dict(command), resume, fresh)
        self.claim: Claim | None = None
        self.store: AnswerStore | None = None
        self.reused = 0  # answers found in the store when the run started
        self._router_partial: dict[str, str] = {}
        self._signals = stop_cleanly()

    # The claim.

    def __enter__(self) -> RunSession:
        output_dir, default_base, command, resume, fresh = self._args
        self._signals.__enter__()
        try:
            if output_dir is not None:
                self.claim = claim_dir(output_dir, command, resume=resume, fresh=fresh)
            else:
                self.claim = claim_default(default_base, command, resume=resume)
        except BaseException:
            self._signals.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if self.store is not None:
                self.store.close()
            if exc is None or self.claim is None or self.claim.fd < 0:
                return
            self.claim.abandon_if_empty()
            if not self.stage.exists():
                return
            kept = (
                f"{answers_in(self.stage)} answered requests are kept in {self.stage}; "
                "run the same command with --resume to continue"
            )
            if isinstance(exc, KeyboardInterrupt):
                signum = exc.signum if isinstance(exc, Interrupted) else 2
                name = "SIGTERM" if signum == 15 else "SIGINT (Ctrl-C)"
                raise Interrupted(signum, f"stopped by {name}; {kept}") from None
            if not isinstance(exc, EvalsuiteError):  # an evalsuite error says itself what to do next
                print(f"note: {kept}", file=sys.stderr)
        finally:
            self._signals.__exit__(None, None, None)

    @property
    def stage(self) -> Path:
        assert self.claim is not None, "use RunSession in a with block"
        return self.claim.stage

    @property
    def state(self) -> Path:
        """The resume state inside the staging directory (`.resume/`)."""
        assert self.claim is not None, "use RunSession in a with block"
        return self.claim.state

    @property
    def final(self) -> Path:
        assert self.claim is not None, "use RunSession in a with block"
        return self.claim.final

    # The fingerprint and the store.

    def check_fingerprint(self, fingerprint: RunFingerprint, keys: Sequence[str] | None = None) -> None:
        """Refuse to continue under another fingerprint (only `keys`, when given: the rest is not known yet),
        or without the record of the one the stored work was made under."""
        path = self.state / FINGERPRINT_FILE
        old = None
        if path.is_file():
            with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
                old = RunFingerprint.from_dict(json.loads(path.read_text(encoding="utf-8")))
        if old is None and holds_work(self.stage):
            raise RunDirError(
                f"cannot resume {self.final}: {path} is missing or unreadable, so its {answers_in(self.stage)} answers "
                "and completed benchmarks cannot be checked against this model and settings; start over with --fresh"
            )
        if old is not None:
            why = fingerprint.differs_from(old, tuple(keys) if keys is not None else None)
            if why:
                raise RunDirError(
                    f"cannot resume {self.final}: its {answers_in(self.stage)} answers were computed under another "
                    f"fingerprint ({why}); run with the original setup, or start over with --fresh"
                )
        if keys is None:
            atomic_write_json(path, fingerprint.to_dict())

    def budget(self) -> int | None:
        """The batching budget (`max_batch_tokens`) an earlier attempt chose, when it was left to the backend:
        a resumed run batches as the first attempt did, whatever memory is free now."""
        path = self.state / BUDGET_FILE
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            value = json.loads(path.read_text(encoding="utf-8")).get("max_batch_tokens")
            return value if isinstance(value, int) and value > 0 else None
        return None

    def keep_budget(self, max_batch_tokens: int | None) -> None:
        """Record the budget the backend chose (once: the first attempt's stays)."""
        path = self.state / BUDGET_FILE
        if max_batch_tokens is not None and not path.exists():
            atomic_write_json(path, {"max_batch_tokens": max_batch_tokens})

    def wrap(self, backend: Backend, fingerprint: RunFingerprint) -> ResumableBackend:
        """The backend behind the store; call after `check_fingerprint(fingerprint)` with all its fields."""
        from evalsuite.resume.lm import ResumableBackend

        self.store = AnswerStore(self.state / STORE_FILE, fingerprint.digest())
        self.reused = len(self.store)
        if self.store.skipped:
            lines = self.store.skipped
            shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
            print(
                f"note: {self.store.path}: {len(lines)} stored answers were unreadable, altered or of another "
                f"fingerprint (line {shown}); they are passed over and asked of the model again",
                file=sys.stderr,
            )
        return ResumableBackend(backend, self.store)

    # Benchmarks, as each completes.

    def completed(self, specs: Sequence[BenchmarkSpec]) -> dict[str, BenchmarkOutcome]:
        """The outcomes of benchmarks an earlier attempt completed (samples and score as written then)."""
        from evalsuite.results import BenchmarkOutcome

        done = {}
        for spec in specs:
            marker = self.state / "done" / f"{spec.name}.json"
            if marker.is_file():
                data = json.loads(marker.read_text(encoding="utf-8"))
                score = BenchmarkScore.from_dict(data["score"])
                if data.get("router_partial"):
                    self._router_partial[spec.name] = data["router_partial"]
                done[spec.name] = BenchmarkOutcome(score, tuple(read_samples(self.stage, spec.name)))
        return done

    def save_benchmark(self, recorder: RouterCounter | None, name: str, outcome: BenchmarkOutcome, reused: int) -> None:
        """Persist a completed benchmark: router counts, samples, then the marker with its score."""
        from evalsuite.fsio import atomic_write_jsonl

        state = self.state
        total = sum(len(d.requests) + len(d.extra.get("mc1_requests", ())) for d in outcome.docs)
        router, note_file = state / "router" / f"{name}.parquet", state / "router" / f"{name}.json"
        partial = None
        if recorder is not None and reused >= total and router.is_file():
            # Killed after its router counts were saved, before its marker: the attempt that answered its
            # requests counted them; this one asked the model nothing and keeps them (and their note).
            if note_file.is_file():
                partial = json.loads(note_file.read_text(encoding="utf-8")).get("partial")
        elif recorder is not None:
            import io

            if reused:
                partial = f"counts miss the {reused} requests answered before the run was resumed (of about {total})"
            atomic_write_json(note_file, {"partial": partial})  # first: the counts below are read with it
            frame = recorder.frame()
            buf = io.BytesIO()
            frame[frame["benchmark"] == name].to_parquet(buf, index=False)
            atomic_write_bytes(router, buf.getvalue())
        atomic_write_jsonl(samples_path(self.stage, name), [d.to_dict() for d in outcome.docs])
        marker: dict[str, Any] = {"score": outcome.score.to_dict()}
        if partial:
            marker["router_partial"] = partial
            self._router_partial[name] = partial
        atomic_write_json(state / "done" / f"{name}.json", marker)

    def write_router(self, names: Sequence[str]) -> dict[str, Any] | None:
        """router_stats.parquet from the benchmarks' parts in table order; its summary for results.json."""
        parts = [self.state / "router" / f"{n}.parquet" for n in names]
        parts = [p for p in parts if p.is_file()]
        if not parts:
            return None
        import pandas as pd

        from evalsuite.moe.recorder import write_frame

        frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        summary = write_frame(frame, self.stage)
        if self._router_partial:
            summary["incomplete"] = dict(self._router_partial)
        return summary

    def finish(self) -> None:
        assert self.claim is not None
        if self.store is not None:
            self.store.close()
            self.store = None
        self.claim.finish()
