"""Faults caught before they cost hours or corrupt a result: a checkpoint that does not match its
config, non-finite log-likelihoods, null cells, two runs on one directory, and the smaller ones.
Each is one `error:` line naming the fix, and nothing already computed is lost."""

# The CLI-error fixtures (work dir, unloadable model, Winogrande data) are imported by name, which ruff
# reads as redefinitions where the tests take them as arguments.
# ruff: noqa: F811

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from test_cli_errors import (  # noqa: F401
    assert_one_line_error,
    invoke,
    run_args,
    snapshot,
    unloadable_model,
    wg_rows,
    winogrande_data,
    work,
)

from conftest import GOLDEN, run_cli
from evalsuite.benchmarks.contract import multiple_choice_metrics
from evalsuite.pipeline.rundir import default_output_dir
from evalsuite.resume.claim import claim_default
from synth import write_split

TINY_LLAMA = GOLDEN / "models" / "tiny-llama"


def without_load_bar(err: str) -> str:
    """stderr less transformers' weight-loading progress bar (a real load shows it)."""
    return "\n".join(line for line in err.split("\n") if "Loading weights" not in line)


def model_copy(work: Path, name: str, **config: Any) -> Path:
    """The reference tiny Llama with config.json entries replaced."""
    model = work / name
    shutil.copytree(TINY_LLAMA, model)
    path = model / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return model


# --- the load check ------------------------------------------------------------------------------


@pytest.mark.slow
def test_checkpoint_missing_a_layer_is_refused_naming_the_weights(work, winogrande_data, capsys):
    model = model_copy(work, "three-layers", num_hidden_layers=3)  # the file holds layers 0 and 1
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(model, winogrande_data))
    line = assert_one_line_error(code, without_load_bar(err), "model.layers.2.", "missing", "--allow-missing-weights")
    assert "model.layers.1." not in line
    assert snapshot(work) == before


@pytest.mark.slow
def test_allow_missing_weights_scores_it_and_records_what_was_not_loaded(work, winogrande_data, capsys):
    model = model_copy(work, "three-layers", num_hidden_layers=3)
    assert run_cli(*run_args(model, winogrande_data, "--allow-missing-weights")) == 0
    results = json.loads((work / "out" / "results.json").read_text())
    assert results["provenance"]["allow_missing_weights"] is True
    missing = results["model"]["weights_not_loaded"]["missing_keys"]
    assert missing and all(name.startswith("model.layers.2.") for name in missing)
    # the model record names the exact weights by their sha256
    weights = (model / "model.safetensors").read_bytes()
    assert results["model"]["weights_sha256"]["model.safetensors"] == hashlib.sha256(weights).hexdigest()


# --- NaN / inf -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_first_non_finite_loglikelihood_stops_the_run_naming_benchmark_and_document(work, capsys):
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    model = model_copy(work, "nan-for-omega")
    weights = load_file(model / "model.safetensors")
    rows = wg_rows(3)
    # the shortest sentence (answered last: lm-eval answers the longest first) is the bad one
    rows[2] = {"sentence": "Ann met _ Ω.", "option1": "Ann", "option2": "Bo", "answer": "1"}
    tokenizer = AutoTokenizer.from_pretrained(model)
    elsewhere = set(tokenizer.encode(" ".join(r["sentence"] for r in wg_rows(6) + rows[:2]) + " Ann met Bo."))
    omega = sorted(set(tokenizer.encode(" Ω.", add_special_tokens=False)) - elsewhere)
    assert omega
    weights["model.embed_tokens.weight"][omega] = torch.nan  # only a prompt holding "Ω" turns NaN
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "train", wg_rows(6))
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "validation", rows)

    code, err = invoke(capsys, *run_args(model, work / "data"))
    assert_one_line_error(code, without_load_bar(err), "winogrande document 2", "nan", "--resume")
    assert not (work / "out").exists()
    store = work / ".out.partial" / ".resume" / "answers.jsonl"
    kept = [json.loads(line)["a"][0] for line in store.read_text().splitlines()]
    assert len(kept) == 2 * 2  # both options of documents 0 and 1, all finite; none of document 2
    assert all(abs(ll) < float("inf") for ll in kept)


def gsm_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"question": f"Ann has {i} apples and buys 2 more. How many?", "answer": f"{i} + 2 = {i + 2}\n#### {i + 2}"}
        for i in range(start, start + n)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["fast", "hf"])
def test_first_non_finite_logits_in_generation_stop_the_run_naming_the_document(work, capsys, backend):
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    model = model_copy(work, "nan-for-omega")
    weights = load_file(model / "model.safetensors")
    train, test = gsm_rows(8), gsm_rows(3, start=10)
    test[1]["question"] = "Ann has Ω apples. How many?"
    tokenizer = AutoTokenizer.from_pretrained(model)
    elsewhere = set(tokenizer.encode(" ".join(r["question"] + " " + r["answer"] for r in train + test[::2])))
    omega = sorted(set(tokenizer.encode(" Ω apples", add_special_tokens=False)) - elsewhere)
    assert omega
    weights["model.embed_tokens.weight"][omega] = torch.nan  # only a prompt holding "Ω" turns NaN
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    write_split(work / "data", "openai/gsm8k", "main", "train", train)
    write_split(work / "data", "openai/gsm8k", "main", "test", test)

    args = run_args(model, work / "data", "--backend", backend)
    args[args.index("winogrande")] = "gsm8k"
    code, err = invoke(capsys, *args)
    assert_one_line_error(code, without_load_bar(err), "gsm8k document 1", "next-token logits are nan", "--resume")
    assert not (work / "out").exists()
    store = work / ".out.partial" / ".resume" / "answers.jsonl"
    kept = [json.loads(line)["a"] for line in store.read_text().splitlines()] if store.exists() else []
    assert len(kept) <= 2  # documents 0 and 2 at most: nothing is kept for document 1


# --- data ----------------------------------------------------------------------------------------


def test_null_cell_is_refused_before_the_model_loads_naming_dataset_split_row_column(work, unloadable_model, capsys):
    rows = wg_rows(3)
    rows[1]["sentence"] = None
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "train", wg_rows(6))
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "validation", rows)
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(unloadable_model, work / "data"))
    assert_one_line_error(code, err, "allenai/winogrande/winogrande_xl/validation row 1", "column sentence is null")
    assert snapshot(work) == before


def arc_row(i: int, texts: list[Any]) -> dict[str, Any]:
    labels = ["A", "B", "C", "D"][: len(texts)]
    return {"id": str(i), "question": f"Question {i}?", "choices": {"text": texts, "label": labels}, "answerKey": "A"}


def test_null_answer_choice_is_refused_naming_the_choice(work, unloadable_model, capsys):
    write_split(work / "data", "allenai/ai2_arc", "ARC-Challenge", "train", [arc_row(i, ["a", "b"]) for i in range(25)])
    write_split(work / "data", "allenai/ai2_arc", "ARC-Challenge", "test", [arc_row(0, ["a", None, "c"])])
    code, err = invoke(capsys, "run", "--model", str(unloadable_model), "--data-dir", "data", "--benchmarks", "arc")
    assert_one_line_error(code, err, "ARC-Challenge/test row 0", "choices.text[1] is null")


def test_empty_truthfulqa_mc1_list_is_refused_before_the_model_loads(work, unloadable_model, capsys):
    row = {
        "question": "Q?",
        "mc1_targets": {"choices": [], "labels": []},
        "mc2_targets": {"choices": ["yes", "no"], "labels": [1, 0]},
    }
    write_split(work / "data", "truthfulqa/truthful_qa", "multiple_choice", "validation", [row])
    code, err = invoke(
        capsys, "run", "--model", str(unloadable_model), "--data-dir", "data", "--benchmarks", "truthfulqa"
    )
    assert_one_line_error(code, err, "validation row 0", "mc1_targets.choices is an empty list")


def test_empty_choice_scores_as_v1_did_without_a_warning():
    # v1: acc_norm = argmax(lls / len(choice)); an empty choice divides by zero in numpy.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # -1.0 / 0 = -inf never wins: choice 1 (-2.0 / 2 = -1.0) is the normalised argmax
        assert multiple_choice_metrics([-1.0, -2.0], ["", "ab"], gold=1) == {"acc": 0.0, "acc_norm": 1.0}
        # 0.0 / 0 = nan, and numpy's argmax returns the first nan: choice 0
        assert multiple_choice_metrics([0.0, -2.0], ["", "ab"], gold=0) == {"acc": 1.0, "acc_norm": 1.0}


# --- one output directory, one run ---------------------------------------------------------------


@pytest.mark.slow
def test_second_run_on_the_same_directory_is_refused_at_once(work, winogrande_data, capsys):
    first = subprocess.Popen(
        [sys.executable, "-m", "evalsuite.cli", *run_args(TINY_LLAMA, winogrande_data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock = work / ".out.partial" / ".resume" / "lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline, "the first run did not claim its directory"
            time.sleep(0.01)
        code, err = invoke(capsys, *run_args(TINY_LLAMA, winogrande_data))
        assert_one_line_error(code, err, "another evalsuite run", f"pid {first.pid}", str(Path("out")))
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


def test_default_directories_claimed_in_the_same_second_are_distinct(work):
    base = default_output_dir("org/model", unique=False)
    command = {"model": "org/model"}
    first, second = claim_default(base, command, resume=False), claim_default(base, command, resume=False)
    assert first.final == base and second.final == base.with_name(base.name + "-2")
    assert first.stage.is_dir() and second.stage.is_dir()


# --- the smaller ones ----------------------------------------------------------------------------


def test_dangling_symlink_as_output_dir_is_refused_before_the_model_loads(
    work, winogrande_data, unloadable_model, capsys
):
    (work / "out").symlink_to(work / "nowhere")
    code, err = invoke(capsys, *run_args(unloadable_model, winogrande_data, out="out"))
    assert_one_line_error(code, err, "--output-dir out", "does not exist")


def test_model_dot_dot_keeps_the_default_output_dir_under_results(work):
    (work / "some-model" / "sub").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work / "some-model" / "sub")
        out = default_output_dir("..")
    assert out.parts[:2] == ("results", "some-model") and ".." not in out.parts


@pytest.mark.parametrize("value", [",,", " , "])
def test_benchmarks_naming_nothing_is_refused(work, winogrande_data, unloadable_model, capsys, value):
    code, err = invoke(capsys, "run", "--model", str(unloadable_model), "--benchmarks", value)
    assert_one_line_error(code, err, "--benchmarks", "names no benchmark")


def test_custom_model_code_names_the_flag_that_allows_it(work, winogrande_data, capsys):
    model = model_copy(work, "custom", model_type="my-custom", auto_map={"AutoConfig": "custom.MyConfig"})
    code, err = invoke(capsys, *run_args(model, winogrande_data))
    assert_one_line_error(code, err, "--trust-remote-code", "model")


def test_custom_tokenizer_code_names_the_flag_that_allows_it(work, winogrande_data, capsys):
    model = model_copy(work, "custom-tok")
    path = model / "tokenizer_config.json"
    tok = json.loads(path.read_text())
    tok["auto_map"] = {"AutoTokenizer": ["tok.MyTokenizer", None]}
    tok["tokenizer_class"] = "MyTokenizer"
    path.write_text(json.dumps(tok))
    code, err = invoke(capsys, *run_args(model, winogrande_data))
    assert_one_line_error(code, err, "--trust-remote-code", "tokenizer")


def test_disk_full_while_keeping_answers_names_the_file_and_keeps_what_was_written(tmp_path):
    import resource

    from evalsuite.errors import RunDirError
    from evalsuite.resume.store import AnswerStore

    store = AnswerStore(tmp_path / "answers.jsonl", "fp")
    store.put("a" * 64, [-1.5, False])
    size = (tmp_path / "answers.jsonl").stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, hard))
    try:
        with pytest.raises(RunDirError, match=r"answers\.jsonl: could not append.*--resume"):
            store.put("b" * 64, [-2.5, True])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    store.close()
    assert AnswerStore(tmp_path / "answers.jsonl", "fp").answers == {"a" * 64: [-1.5, False]}


def test_compare_on_a_truncated_samples_file_names_the_file_and_line(tmp_path, tiny_run, capsys):
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_run, damaged)
    path = damaged / "samples" / "arc.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # cut mid-line, as a full disk or a kill would
    code = run_cli("compare", str(tiny_run), str(damaged))
    out, err = capsys.readouterr()
    # compare still reports the other benchmarks; arc's paired test names the damage instead of a traceback
    assert code == 0 and "Traceback" not in err
    assert f"{path} line " in out and "truncated" in out


def test_a_full_disk_while_writing_a_result_names_the_file(tmp_path, capsys):
    import resource

    from evalsuite.fsio import atomic_write_text

    target = tmp_path / "samples" / "arc.jsonl"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG, as ENOSPC would
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
    try:
        with pytest.raises(OSError) as caught:
            atomic_write_text(target, "x" * 100_000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert str(target) in str(caught.value) and "could not write" in str(caught.value)
    assert list(target.parent.iterdir()) == []  # no temp file left behind


def test_a_cell_of_the_wrong_type_is_one_line_naming_the_row(work, unloadable_model, capsys):
    write_split(work / "data", "allenai/ai2_arc", "ARC-Challenge", "train", [arc_row(i, ["a", "b"]) for i in range(25)])
    row = {**arc_row(0, ["a", "b"]), "choices": "a, b"}  # a string where the Hub dataset has a struct
    write_split(work / "data", "allenai/ai2_arc", "ARC-Challenge", "test", [row])
    code, err = invoke(capsys, "run", "--model", str(unloadable_model), "--data-dir", "data", "--benchmarks", "arc")
    assert_one_line_error(code, err, "ARC-Challenge/test row 0", "choices is a str", "choices.text", "schema")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--from-dir", "nowhere"], ("--from-dir nowhere: no such directory",)),
        ([], ("HF_HUB_OFFLINE", "pass --from-dir DIR")),  # offline, from the Hub
    ],
)
def test_data_pull_names_its_own_options(work, capsys, args, names):
    code, err = invoke(capsys, "data", "pull", "copy", "--benchmarks", "arc", *args)
    line = err.strip().split("\n")[-1].split("\r")[-1]  # after the progress bar, when it started
    assert code == 1 and line.startswith("error: ") and all(name in line for name in names), err
    assert "--data-dir" not in line
