"""Interrupted runs: a real `evalsuite run` subprocess on the reference data is killed (SIGKILL mid-
benchmark and between two benchmarks, then SIGTERM), resumed, and must end with the samples and scores
of an uninterrupted run, the model having answered every request exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from counting_backend import LOG_ENV

from conftest import GOLDEN, plugin_environment, reference_run, run_cli

BENCHMARKS = ("arc", "truthfulqa", "gsm8k")


def command(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "evalsuite.cli", "run",
        "--model", str(GOLDEN / "models" / "tiny-moe"),
        "--data-dir", str(GOLDEN / "data"),
        "--output-dir", str(out),
        "--benchmarks", ",".join(BENCHMARKS),
        "--limit", "3",
        "--no-progress",
        # lm-eval's HF class stores each answer as it completes: the kills below land between two answers
        # of one call (the fast backend answers a call's log-likelihoods together). The counting backend is
        # the hf backend writing each answer it returns to the counter (tests/counting_backend.py).
        "--backend", "counting",
        *extra,
    ]  # fmt: skip


def environment(counter: Path) -> dict[str, str]:
    """The run's: the counting backend installed as a plugin, writing to `counter`."""
    plugins = plugin_environment(counter.parent / "plugins", {"counting": "counting_backend"})
    return {**plugins, LOG_ENV: str(counter), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def stage_of(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def run_until(
    out: Path, counter: Path, ready: Callable[[], bool], sig: int, *extra: str
) -> subprocess.CompletedProcess:
    """Start the run, send `sig` as soon as `ready()` holds, and wait for it to end."""
    proc = subprocess.Popen(
        command(out, *extra), env=environment(counter), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            stdout, stderr = proc.communicate()
            pytest.fail(f"the run ended before the kill point (rc {proc.returncode}): {stderr[-2000:]}")
        time.sleep(0.002)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def exact_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run of the same command."""
    return reference_run(
        tmp_path_factory, "tiny-moe", "--limit", "3", "--benchmarks", ",".join(BENCHMARKS), "--backend", "hf"
    )


@pytest.mark.slow
def test_killed_and_resumed_run_equals_an_uninterrupted_one(
    tmp_path: Path, exact_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    out, counter = tmp_path / "run", tmp_path / "answers.log"
    done = stage_of(out) / ".resume" / "done"
    # expected: every distinct request the uninterrupted run recorded (TruthfulQA's mc1 ones apart; an
    # mc1 choice that is also an mc2 choice is the same request, answered once)
    reference = {b: [json.loads(x) for x in lines(exact_run / "samples" / f"{b}.jsonl")] for b in BENCHMARKS}
    n_arc = sum(len(d["requests"]) for d in reference["arc"])
    total = len(
        {
            (r["context"], r.get("continuation"))
            for docs in reference.values()
            for d in docs
            for r in d["requests"] + d.get("mc1_requests", [])
        }
    )

    # 1. SIGKILL in the middle of arc
    killed = run_until(out, counter, lambda: len(lines(counter)) >= 4, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists() and not done.exists()
    assert 4 <= len(lines(counter)) < n_arc

    # 2. SIGKILL once arc is complete, before (or just into) truthfulqa
    killed = run_until(out, counter, lambda: (done / "arc.json").exists(), signal.SIGKILL, "--resume")
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists() and (stage_of(out) / "samples" / "arc.jsonl").exists()

    # 3. SIGTERM in the middle of truthfulqa: a clean stop that says how to continue
    before = len(lines(counter))  # the kill in 2. may land a few truthfulqa answers in
    stopped = run_until(out, counter, lambda: len(lines(counter)) >= before + 3, signal.SIGTERM, "--resume")
    assert stopped.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in stopped.stderr and "--resume" in stopped.stderr
    assert len(stopped.stderr.strip().splitlines()[-1]) < 400  # one line
    assert not out.exists()

    # 4. without --resume the unfinished run is reported with both choices; nothing is touched
    kept = (stage_of(out) / ".resume" / "answers.jsonl").read_bytes()
    from evalsuite.engine.registry import BACKENDS

    monkeypatch.setitem(BACKENDS, "counting", "counting_backend")  # this process has no plugin installed
    assert run_cli(*command(out)[3:]) == 1
    refused = capsys.readouterr().err
    assert refused.startswith("error: ") and len(refused.strip().splitlines()) == 1
    assert "unfinished run" in refused and "--resume" in refused and "--fresh" in refused
    assert (stage_of(out) / ".resume" / "answers.jsonl").read_bytes() == kept

    # 5. resumed to completion
    answered_before = len(lines(counter))
    finished = subprocess.run(command(out, "--resume"), env=environment(counter), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert f"{answered_before} requests already answered" in finished.stderr

    keys = lines(counter)
    assert len(keys) == len(set(keys)) == total  # every request answered once, none twice
    for b in BENCHMARKS:
        assert (out / "samples" / f"{b}.jsonl").read_bytes() == (exact_run / "samples" / f"{b}.jsonl").read_bytes()
    got = json.loads((out / "results.json").read_text())
    want = json.loads((exact_run / "results.json").read_text())
    for b in BENCHMARKS:
        assert got["benchmarks"][b] == want["benchmarks"][b]
    assert got["provenance"]["resumed_answers"] == answered_before
    # router counts: complete for the benchmark run in one go, flagged for the two interrupted midway
    import pandas as pd

    router, reference_router = (
        pd.read_parquet(out / "router_stats.parquet"),
        pd.read_parquet(exact_run / "router_stats.parquet"),
    )
    gsm8k = router[router.benchmark == "gsm8k"].reset_index(drop=True)
    pd.testing.assert_frame_equal(gsm8k, reference_router[reference_router.benchmark == "gsm8k"].reset_index(drop=True))
    assert set(got["router"]["incomplete"]) == {"arc", "truthfulqa"} and "incomplete" not in want["router"]
    assert not (out / ".resume").exists() and not stage_of(out).exists()
    # accounting covers what this attempt asked: truthfulqa's remaining requests, all of gsm8k, no arc
    cost, full = got["engine"]["benchmarks"], want["engine"]["benchmarks"]
    assert "arc" not in cost and cost["gsm8k"]["requests"] == full["gsm8k"]["requests"]
    assert 0 < cost["truthfulqa"]["requests"] < full["truthfulqa"]["requests"]
    assert cost["truthfulqa"]["unique_prefix_floor"] < full["truthfulqa"]["unique_prefix_floor"]


@pytest.mark.slow
def test_a_kill_between_samples_and_marker_keeps_the_benchmarks_router_counts(tmp_path: Path, exact_run: Path):
    import pandas as pd

    out, counter = tmp_path / "run", tmp_path / "answers.log"
    done = stage_of(out) / ".resume" / "done"
    killed = run_until(out, counter, lambda: (done / "arc.json").exists(), signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    (done / "arc.json").unlink()  # the kill landed after arc's router counts and samples, before its marker
    finished = subprocess.run(command(out, "--resume"), env=environment(counter), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    router, reference = (pd.read_parquet(d / "router_stats.parquet") for d in (out, exact_run))
    arc = router[router.benchmark == "arc"].reset_index(drop=True)
    pd.testing.assert_frame_equal(arc, reference[reference.benchmark == "arc"].reset_index(drop=True))
    assert "arc" not in json.loads((out / "results.json").read_text())["router"].get("incomplete", {})
