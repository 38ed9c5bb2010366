"""A run's own files are never written through a symbolic link. Each attack is set up as someone who can
write into a shared results directory would: a link planted in a real unfinished run (left by kill -9),
pointing at a file of the user's, which must be unchanged afterwards. A link the user made on purpose (an
output directory, a card) does what the README says."""

# The CLI-error fixtures are imported by name, which ruff reads as redefinitions where tests take them.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli_errors import assert_one_line_error, invoke, wg_rows, work  # noqa: F401

from conftest import GOLDEN, run_cli
from evalsuite.pipeline.rundir import default_output_dir
from evalsuite.resume.claim import claim_default
from synth import write_split

TINY_LLAMA = GOLDEN / "models" / "tiny-llama"
SECRET = b"the user's own file: must never change\n"


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """(the staging directory of a real run killed with SIGKILL after its first answers, its command's
    options after `--output-dir`): what a requeued job or an attacker finds in a results directory."""
    root = tmp_path_factory.mktemp("killed")
    write_split(root / "data", "allenai/winogrande", "winogrande_xl", "train", wg_rows(6))
    write_split(root / "data", "allenai/winogrande", "winogrande_xl", "validation", wg_rows(12))
    options = [
        "--model", str(TINY_LLAMA), "--data-dir", str(root / "data"), "--benchmarks", "winogrande",
        "--no-progress", "--backend", "hf",  # stores each answer as it completes
    ]  # fmt: skip
    out = root / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalsuite.cli", "run", "--output-dir", str(out), *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = root / ".out.partial" / ".resume" / "answers.jsonl"
    deadline = time.monotonic() + 120
    while not (store.exists() and store.read_bytes().count(b"\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first answers"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return root / ".out.partial", options


def victim(work: Path) -> Path:
    path = work / "precious.txt"
    path.write_bytes(SECRET)
    return path


def planted(killed: tuple[Path, list[str]], where: Path, link: str, target: Path) -> Path:
    """A copy of the killed run's staging directory at `where`, its file `link` replaced by a symlink."""
    shutil.copytree(killed[0], where, symlinks=True)
    (where / link).unlink()
    (where / link).symlink_to(target)
    return where


def test_resume_refuses_an_answer_store_that_is_a_link(work, killed, capsys):
    target = victim(work)
    planted(killed, work / ".out.partial", ".resume/answers.jsonl", target)
    code, err = invoke(capsys, "run", "--output-dir", "out", *killed[1], "--resume")
    assert_one_line_error(code, err, "answers.jsonl", "symbolic link", "remove the link")
    assert target.read_bytes() == SECRET
    assert (work / ".out.partial" / ".resume" / "answers.jsonl").is_symlink()  # left for the user to see


@pytest.mark.parametrize("resume", [False, True])
def test_a_lock_that_is_a_link_is_never_written(work, killed, capsys, resume):
    target = victim(work)
    planted(killed, work / ".out.partial", ".resume/lock", target)
    code, err = invoke(capsys, "run", "--output-dir", "out", *killed[1], *(["--resume"] if resume else []))
    assert_one_line_error(code, err, "lock", "symbolic link")
    assert target.read_bytes() == SECRET


@pytest.mark.slow
def test_a_plain_run_passes_over_a_linked_unfinished_run_of_the_same_command(work, killed, capsys):
    target = victim(work)
    parent = default_output_dir(str(TINY_LLAMA), unique=False).parent
    parent.mkdir(parents=True)
    stage = planted(killed, parent / ".20200101T000000Z.partial", ".resume/lock", target)
    assert run_cli("run", *killed[1]) == 0  # the default output directory: every unfinished run is scanned
    assert target.read_bytes() == SECRET
    assert f"{stage} left alone" in capsys.readouterr().err
    assert len(list(parent.glob("*/results.json"))) == 1


def test_a_linked_directory_inside_the_stage_is_refused(work, killed, capsys):
    (work / "elsewhere").mkdir()
    keep = work / "elsewhere" / "winogrande.jsonl"
    keep.write_bytes(SECRET)
    stage = planted(killed, work / ".out.partial", ".resume/lock", work / ".out.partial" / ".resume" / "x")
    (stage / ".resume" / "lock").unlink()
    (stage / "samples").symlink_to(work / "elsewhere")
    code, err = invoke(capsys, "run", "--output-dir", "out", *killed[1], "--resume")
    assert_one_line_error(code, err, "samples", "symbolic link")
    assert keep.read_bytes() == SECRET


def test_staging_directories_are_not_writable_by_others_whatever_the_umask(work):
    previous = os.umask(0o002)  # group-writable files: a shared machine's common setting
    try:
        claim = claim_default(work / "results" / "m" / "ts", {"model": "m"}, resume=False)
    finally:
        os.umask(previous)
    assert claim.stage.stat().st_mode & 0o022 == 0
    assert claim.state.stat().st_mode & 0o777 == 0o700
    claim.release()


@pytest.mark.slow
def test_an_output_dir_that_links_to_an_empty_directory_receives_the_run(work, killed):
    (work / "disk").mkdir()
    (work / "disk" / "run").mkdir()
    (work / "out").symlink_to(work / "disk" / "run")
    options = killed[1][: killed[1].index("--backend")] + ["--limit", "2"]
    assert run_cli("run", "--output-dir", "out", *options) == 0
    assert (work / "out").is_symlink() and os.readlink(work / "out") == str(work / "disk" / "run")
    assert json.loads((work / "disk" / "run" / "results.json").read_text())["benchmarks"]["winogrande"]["n_docs"] == 2


def test_a_card_that_is_a_link_stays_one_and_its_target_is_updated(tmp_path, tiny_run):
    target = tmp_path / "cards" / "README.md"
    target.parent.mkdir()
    target.write_text("---\nlicense: mit\n---\n# My merge\n\nText.\n")
    link = tmp_path / "README.md"
    link.symlink_to(target)
    assert run_cli("card", str(tiny_run), "--update", str(link), "--allow-smoke") == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "model-index" in target.read_text() and "license: mit" in target.read_text()


# --- the answer store's integrity, through a real resume ---------------------------------------------


def test_resume_without_the_fingerprint_record_is_refused(work, killed, capsys):
    shutil.copytree(killed[0], work / ".out.partial")
    (work / ".out.partial" / ".resume" / "fingerprint.json").unlink()  # the weights could have changed since
    code, err = invoke(capsys, "run", "--output-dir", "out", *killed[1], "--resume")
    assert_one_line_error(code, err, "fingerprint.json", "missing or unreadable", "--fresh")


@pytest.mark.slow
def test_resume_over_a_damaged_answer_line_says_so_and_asks_it_again(work, killed, capsys):
    stage = shutil.copytree(killed[0], work / ".out.partial")
    store = stage / ".resume" / "answers.jsonl"
    lines = store.read_bytes().splitlines(keepends=True)
    store.write_bytes(b"{not json\n" + b"".join(lines))
    assert run_cli("run", "--output-dir", "out", *killed[1], "--resume") == 0
    err = capsys.readouterr().err
    assert "1 stored answers were unreadable, altered or of another fingerprint (line 1)" in err
    assert f"resuming out: {len(lines)} requests already answered" in err


# --- requeued jobs: a complete run, and a stage with nothing in it --------------------------------


@pytest.mark.slow
def test_resume_on_a_complete_run_says_so_and_succeeds(work, killed, capsys):
    options = killed[1][: killed[1].index("--backend")] + ["--limit", "2"]
    assert run_cli("run", "--output-dir", "out", *options) == 0
    before = {p: p.read_bytes() for p in (work / "out").rglob("*") if p.is_file()}
    capsys.readouterr()
    assert run_cli("run", "--output-dir", "out", *options, "--resume") == 0  # what a requeue script does
    said = capsys.readouterr()
    assert "out is a complete run of this command; nothing to resume" in said.err
    assert said.out.startswith("run complete already, nothing written: out\n") and "written to" not in said.out
    assert {p: p.read_bytes() for p in (work / "out").rglob("*") if p.is_file()} == before
    code, err = invoke(capsys, "run", "--output-dir", "out", *options[:-1], "3", "--resume")
    assert_one_line_error(code, err, "complete run of another command", "limit was 2, now 3")
    # any option of the command, not only those results.json shows elsewhere
    code, err = invoke(capsys, "run", "--output-dir", "out", *options, "--dtype", "bfloat16", "--resume")
    assert_one_line_error(code, err, "complete run of another command", "dtype was auto, now bfloat16")
    assert {p: p.read_bytes() for p in (work / "out").rglob("*") if p.is_file()} == before


def test_a_stage_with_nothing_answered_is_cleared_without_asking(work, capsys):
    from evalsuite.resume.claim import claim_dir

    claim_dir(work / "out", {"model": "whatever"}, resume=False, fresh=False).release()  # as kill -9 leaves it
    (work / "m").mkdir()
    (work / "m" / "config.json").write_text("not JSON")
    code, err = invoke(capsys, "run", "--model", "m", "--output-dir", "out", "--data-dir", str(GOLDEN / "data"),
                       "--benchmarks", "arc", "--limit", "1")  # fmt: skip
    assert_one_line_error(code, err, "config.json")  # past the claim: the model is what stops it
    assert "unfinished" not in err and not (work / ".out.partial").exists()


@pytest.mark.slow
def test_a_resumed_run_batches_by_the_budget_its_first_attempt_chose(work, killed):
    from evalsuite.pipeline.run import RunOptions
    from evalsuite.resume.claim import claim_dir

    data = killed[1][killed[1].index("--data-dir") + 1]
    options = RunOptions(model=str(TINY_LLAMA), data_dir=data, benchmarks=("winogrande",), limit=2)
    claim = claim_dir(work / "out", options.command(), resume=False, fresh=False)  # the first attempt's stage
    (claim.state / "budget.json").write_text('{"max_batch_tokens": 300}')  # what it chose (its memory)
    claim.release()
    args = ["--model", str(TINY_LLAMA), "--data-dir", data, "--benchmarks", "winogrande", "--limit", "2"]
    assert run_cli("run", "--output-dir", "out", *args, "--no-progress", "--resume") == 0
    assert json.loads((work / "out" / "results.json").read_text())["engine"]["max_batch_tokens"] == 300
