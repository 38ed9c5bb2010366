"""A run's resumable state: what an interruption keeps, and the refusal to mix answers of another setup."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_resume_lm import REQUESTS, LengthLM, instances

from conftest import as_backend
from evalsuite.errors import RunDirError
from evalsuite.resume.fingerprint import RunFingerprint
from evalsuite.resume.session import RunSession

COMMAND = {"model": "/models/merge", "benchmarks": ["arc"], "limit": None}
SETUP = RunFingerprint({"dtype": "bfloat16", "model": {"model.safetensors": "sha256:aa"}, "threads": None})


def interrupted_run(out: Path) -> None:
    """A run that answered two requests and then failed."""
    with pytest.raises(RuntimeError), RunSession(out, out, COMMAND, resume=False, fresh=False) as session:
        session.check_fingerprint(SETUP)
        session.wrap(as_backend(LengthLM()), SETUP).lm.loglikelihood(instances(REQUESTS[:2]))
        raise RuntimeError("the machine went away")


def test_resume_under_another_fingerprint_is_refused_naming_what_changed(tmp_path: Path):
    out = tmp_path / "run"
    interrupted_run(out)
    changed = SETUP.with_fields(model={"model.safetensors": "sha256:bb"})
    with pytest.raises(RunDirError) as refused, RunSession(out, out, COMMAND, resume=True, fresh=False) as session:
        session.check_fingerprint(changed)
    message = str(refused.value)
    assert "2 answers" in message and "model model.safetensors was sha256:aa, now sha256:bb" in message
    assert "--fresh" in message and "\n" not in message


def test_resume_under_the_same_fingerprint_reuses_the_answers(tmp_path: Path):
    out = tmp_path / "run"
    interrupted_run(out)
    backend = LengthLM()
    with RunSession(out, out, COMMAND, resume=True, fresh=False) as session:
        session.check_fingerprint(SETUP)
        lm = session.wrap(as_backend(backend), SETUP).lm
        assert session.reused == 2
        lm.loglikelihood(instances(REQUESTS))
        session.finish()
    assert backend.asked == [REQUESTS[2].arguments]
    assert out.is_dir() and not (out / ".resume").exists()


def test_another_command_in_the_same_directory_is_refused(tmp_path: Path):
    out = tmp_path / "run"
    interrupted_run(out)
    other = {**COMMAND, "limit": 5}
    with pytest.raises(RunDirError, match=r"another command \(limit was unset, now 5\)"):
        RunSession(out, out, other, resume=True, fresh=False).__enter__()


def test_fresh_discards_the_unfinished_run(tmp_path: Path):
    out = tmp_path / "run"
    interrupted_run(out)
    with RunSession(out, out, COMMAND, resume=False, fresh=True) as session:
        session.check_fingerprint(SETUP)
        assert session.wrap(as_backend(LengthLM()), SETUP) is not None and session.reused == 0
        session.finish()
