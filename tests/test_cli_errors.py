"""Bad input through the CLI, in-process: exit 1, ONE stderr line `error: <what>; <fix>`, nothing left behind.

Bad data must be refused before the model is loaded: those cases point --model at a directory whose
config.json is not JSON, so a model loaded first would fail with a different message.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import huggingface_hub  # noqa: F401  imported now, while conftest's HF_HUB_OFFLINE=1 holds: it reads it once
import pytest

from conftest import run_cli
from synth import write_split

VALID = ("arc", "hellaswag", "mmlu", "truthfulqa", "winogrande", "gsm8k")


def wg_rows(n: int) -> list[dict[str, Any]]:
    return [
        {"sentence": f"Ann thanked Bo because _ helped {i}.", "option1": "Ann", "option2": "Bo", "answer": "2"}
        for i in range(n)
    ]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root (hidden ones too), with file contents."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int | str, str]:
    """(exit code, stderr); an escaping exception or argparse's SystemExit is reported, not raised."""
    try:
        code: int | str = run_cli(*argv)
    except SystemExit as exc:
        code = f"SystemExit({exc.code}) instead of a returned code"
    except Exception as exc:
        code = f"uncaught {type(exc).__name__}: {exc}"
    return code, capsys.readouterr().err


def assert_one_line_error(code: int | str, err: str, *names: str, codes: tuple[int, ...] = (1,)) -> str:
    lines = err.strip("\n").split("\n")
    assert code in codes, f"exit {code!r}, stderr: {err!r}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for name in names:
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory: a default results/ dir would land here, and must not."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def unloadable_model(work: Path) -> Path:
    model = work / "unloadable-model"
    model.mkdir()
    (model / "config.json").write_text("this is not JSON")
    return model


@pytest.fixture
def winogrande_data(work: Path) -> Path:
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "train", wg_rows(6))
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "validation", wg_rows(2))
    return work / "data"


def run_args(model: Path | str, data: Path | None, *extra: str, out: str = "out") -> list[str]:
    args = ["run", "--model", str(model), "--output-dir", out, "--no-progress", "--benchmarks", "winogrande"]
    return args + (["--data-dir", str(data)] if data else []) + list(extra)


def test_unknown_benchmark_lists_the_valid_ones(work, winogrande_data, unloadable_model, capsys):
    before = snapshot(work)
    args = run_args(unloadable_model, winogrande_data)
    args[args.index("winogrande")] = "winogrande,gsm9k"
    line = assert_one_line_error(*invoke(capsys, *args), "'gsm9k'")
    assert all(name in line for name in VALID), line
    assert snapshot(work) == before


def test_model_path_that_does_not_exist(work, winogrande_data, capsys):
    before = snapshot(work)
    missing = work / "no-such-model"
    assert_one_line_error(*invoke(capsys, *run_args(missing, winogrande_data)), str(missing), "no such directory")
    assert snapshot(work) == before


def test_hub_model_id_while_offline_names_the_id_and_what_to_check(work, winogrande_data, capsys):
    before = snapshot(work)
    code, err = invoke(capsys, *run_args("nobody-evalsuite-test/no-model", winogrande_data))
    assert_one_line_error(code, err, "nobody-evalsuite-test/no-model", "HF_HUB_OFFLINE", "local model directory")
    assert snapshot(work) == before


def test_model_dir_without_config_json(work, winogrande_data, capsys):
    (work / "empty-model").mkdir()
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(work / "empty-model", winogrande_data))
    assert_one_line_error(code, err, "empty-model", "config.json")
    assert snapshot(work) == before


def test_model_dir_without_tokenizer_files(work, winogrande_data, golden_dir, capsys):
    (work / "no-tokenizer").mkdir()
    shutil.copy(golden_dir / "models" / "tiny-llama" / "config.json", work / "no-tokenizer")
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(work / "no-tokenizer", winogrande_data))
    assert_one_line_error(code, err, "no-tokenizer", "tokenizer")
    assert snapshot(work) == before


def test_data_dir_missing_a_split_names_the_file_before_loading_the_model(work, unloadable_model, capsys):
    data = work / "data"
    write_split(data, "allenai/winogrande", "winogrande_xl", "validation", wg_rows(1))
    before = snapshot(work)
    expected_file = data / "allenai" / "winogrande" / "winogrande_xl" / "train.parquet"
    code, err = invoke(capsys, *run_args(unloadable_model, data))
    assert_one_line_error(code, err, str(expected_file), "evalsuite data pull")
    assert snapshot(work) == before


def test_parquet_with_wrong_columns_names_them_before_loading_the_model(work, unloadable_model, capsys):
    rows = [{"sentence": "Ann thanked Bo because _ helped.", "choice1": "Ann", "choice2": "Bo", "answer": "2"}]
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "train", rows)
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "validation", rows)
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(unloadable_model, work / "data"))
    assert_one_line_error(code, err, "option1, option2", "winogrande_xl")
    assert snapshot(work) == before


def test_data_dir_that_does_not_exist(work, unloadable_model, capsys):
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(unloadable_model, work / "no-data"))
    assert_one_line_error(code, err, "no-data", "evalsuite data pull")
    assert snapshot(work) == before


def test_output_dir_holding_a_run_is_refused_and_the_run_left_untouched(work, winogrande_data, golden_dir, capsys):
    earlier = work / "earlier-run"
    (earlier / "samples").mkdir(parents=True)
    (earlier / "results.json").write_text('{"schema_version": 1}\n')
    (earlier / "samples" / "winogrande.jsonl").write_text('{"doc_id": 0}\n')
    (earlier / "metrics.md").write_text("| Avg. | 50.00 |\n")
    before = snapshot(work)
    model = golden_dir / "models" / "tiny-llama"
    code, err = invoke(capsys, *run_args(model, winogrande_data, out=str(earlier)))
    assert_one_line_error(code, err, str(earlier), "already exists")
    assert snapshot(work) == before  # no staging dir beside it, not a byte of the earlier run changed


def test_output_dir_under_a_file_is_refused_before_loading_the_model(work, winogrande_data, unloadable_model, capsys):
    (work / "a-file").write_text("not a directory\n")
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(unloadable_model, winogrande_data, out=str(work / "a-file" / "run")))
    assert_one_line_error(code, err, "--output-dir", str(work / "a-file"))
    assert snapshot(work) == before


def test_offline_without_a_data_dir_asks_for_one(work, unloadable_model, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(unloadable_model, None))
    assert_one_line_error(code, err, "HF_DATASETS_OFFLINE", "--data-dir", "evalsuite data pull")
    assert snapshot(work) == before


def test_unknown_dtype_lists_the_supported_ones(work, winogrande_data, unloadable_model, capsys):
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(unloadable_model, winogrande_data, "--dtype", "float8"))
    assert_one_line_error(code, err, "--dtype", "float8", "float32", "bfloat16", "float16")
    assert snapshot(work) == before


@pytest.mark.parametrize(
    ("option", "value"),
    [("--limit", "0"), ("--limit", "-3"), ("--limit", "three"), ("--batch-size", "0"), ("--max-batch-tokens", "0")],
)
def test_non_positive_counts_are_refused_in_one_line(work, winogrande_data, unloadable_model, capsys, option, value):
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(unloadable_model, winogrande_data, option, value))
    assert_one_line_error(code, err, option, value, codes=(1, 2))  # 2: the usual code for a usage error
    assert snapshot(work) == before


def test_fewshot_split_smaller_than_the_shot_count_is_refused(work, unloadable_model, capsys):
    # 5-shot Winogrande cannot draw 5 from 3 train rows; v1 would crash in random.sample.
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "train", wg_rows(3))
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "validation", wg_rows(3))
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(unloadable_model, work / "data"))
    assert_one_line_error(code, err, "train", "3", "5")
    assert snapshot(work) == before


def test_arc_answer_key_outside_a_to_e_is_refused(work, unloadable_model, capsys):
    row = {"id": "q0", "question": "Which?", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "F"}
    write_split(work / "data", "allenai/ai2_arc", "ARC-Challenge", "train", [row | {"answerKey": "A"}] * 25)
    write_split(work / "data", "allenai/ai2_arc", "ARC-Challenge", "test", [row])
    before = snapshot(work)
    args = run_args(unloadable_model, work / "data")
    args[args.index("winogrande")] = "arc"
    assert_one_line_error(*invoke(capsys, *args), "answerKey", "'F'")
    assert snapshot(work) == before


def test_winogrande_sentence_without_a_blank_is_refused(work, unloadable_model, capsys):
    no_blank = wg_rows(1)[0] | {"sentence": "Ann thanked Bo because he helped."}
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "train", wg_rows(6))
    write_split(work / "data", "allenai/winogrande", "winogrande_xl", "validation", [no_blank])
    before = snapshot(work)
    assert_one_line_error(*invoke(capsys, *run_args(unloadable_model, work / "data")), "sentence", "_")
    assert snapshot(work) == before


def test_data_pull_from_a_dir_missing_a_split_names_the_file(work, capsys):
    src = work / "src"
    write_split(src, "openai/gsm8k", "main", "test", [{"question": "How many?", "answer": "Two.\n#### 2"}])
    code, err = invoke(capsys, "data", "pull", str(work / "copy"), "--from-dir", str(src), "--benchmarks", "gsm8k")
    last = err.strip("\n").split("\n")[-1]  # a progress bar may precede it
    assert code == 1
    assert last.startswith("error: ") and str(src / "openai" / "gsm8k" / "main" / "train.parquet") in last, err
    assert not (work / "copy").exists()  # the test split it could read was not written either


def test_data_pull_of_an_unknown_benchmark_lists_the_valid_ones(work, capsys):
    code, err = invoke(capsys, "data", "pull", str(work / "copy"), "--benchmarks", "gsm9k")
    line = assert_one_line_error(code, err, "gsm9k")
    assert all(name in line for name in VALID), line
    assert not (work / "copy").exists()


def test_gsm8k_gold_answer_without_a_final_line_is_refused(work, unloadable_model, capsys):
    # Its gold would extract to "[invalid]" and match every generation without "#### N".
    train = [{"question": f"How many {i}?", "answer": f"{i}.\n#### {i}"} for i in range(5)]
    write_split(work / "data", "openai/gsm8k", "main", "train", train)
    write_split(work / "data", "openai/gsm8k", "main", "test", [{"question": "How many?", "answer": "Two."}])
    before = snapshot(work)
    args = run_args(unloadable_model, work / "data")
    args[args.index("winogrande")] = "gsm8k"
    assert_one_line_error(*invoke(capsys, *args), "openai/gsm8k/main/test row 0", "####")
    assert snapshot(work) == before


def test_hellaswag_label_outside_the_endings_is_refused_in_the_fewshot_split(work, unloadable_model, capsys):
    row = {
        "ind": 0, "activity_label": "Knitting", "ctx_a": "She knits.", "ctx_b": "then", "ctx": "",
        "endings": ["a", "b", "c", "d"], "source_id": "x", "split": "train", "split_type": "indomain", "label": "1",
    }  # fmt: skip
    write_split(work / "data", "Rowan/hellaswag", "default", "train", [row] * 9 + [row | {"label": "7"}])
    write_split(work / "data", "Rowan/hellaswag", "default", "validation", [row])
    before = snapshot(work)
    args = run_args(unloadable_model, work / "data")
    args[args.index("winogrande")] = "hellaswag"
    assert_one_line_error(*invoke(capsys, *args), "Rowan/hellaswag/default/train row 9", "'7'")
    assert snapshot(work) == before


def test_revision_for_a_local_model_dir_is_refused(work, winogrande_data, golden_dir, capsys):
    model = golden_dir / "models" / "tiny-llama"
    code, err = invoke(capsys, *run_args(model, winogrande_data, "--revision", "v1.0"))
    assert_one_line_error(code, err, "--revision v1.0", "local directory")
    assert not (work / "out").exists()


@pytest.mark.parametrize(
    "content",
    ["[]", '{"schema_version": 1, "model": {"id": "m"}, "benchmarks": []}', "not json"],
    ids=["list", "benchmarks-list", "not-json"],
)
def test_malformed_results_json_is_a_one_line_error(work, capsys, content):
    run = work / "run"
    run.mkdir()
    (run / "results.json").write_text(content)
    assert_one_line_error(*invoke(capsys, "router-stats", str(run)), str(run))
    assert_one_line_error(*invoke(capsys, "compare", str(run)), "results.json")


@pytest.mark.parametrize("argv", [("--bogus",), ("bogus",), ()])
def test_a_missing_command_names_the_commands(work, capsys, argv):
    code, err = invoke(capsys, *argv)
    line = assert_one_line_error(code, err, "give a command", "run", "card", "compare", "merge", codes=(2,))
    assert all(word in line for word in argv)  # what was given instead is named


def test_a_missing_command_never_repeats_a_token(work, capsys):
    token = "hf_" + "a1b2c3d4" * 4
    code, err = invoke(capsys, "--hf-token", token)
    assert_one_line_error(code, err, "give a command", codes=(2,))
    assert token not in err


def test_output_dir_in_an_unwritable_place_is_one_line(work, winogrande_data, unloadable_model, capsys):
    # /proc passes a permission check for root yet takes no new files: the error comes at the claim
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(unloadable_model, winogrande_data, out="/proc/evalsuite-run"))
    line = assert_one_line_error(code, err, "/proc/evalsuite-run", "--output-dir")
    assert "Errno" not in line and ".partial" not in line
    assert snapshot(work) == before


def test_output_dir_that_is_a_file_says_so(work, winogrande_data, unloadable_model, capsys):
    (work / "empty-file").write_text("")
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(unloadable_model, winogrande_data, out=str(work / "empty-file")))
    assert_one_line_error(code, err, "--output-dir", "is a file, not a directory")
    assert snapshot(work) == before


@pytest.mark.parametrize(
    ("backend", "option", "value", "names"),
    [
        ("fast", "--batch-size", "4", ("--batch-size is the hf backend's", "--max-batch-tokens")),
        ("hf", "--max-batch-tokens", "512", ("--max-batch-tokens is the fast backend's", "--batch-size")),
        ("vllm", "--max-batch-tokens", "512", ("--max-batch-tokens is the fast backend's", "vllm")),
    ],
)
def test_a_batching_option_of_another_backend_is_refused_not_ignored(
    work, winogrande_data, unloadable_model, capsys, backend, option, value, names
):
    before = snapshot(work)
    code, err = invoke(capsys, *run_args(unloadable_model, winogrande_data, "--backend", backend, option, value))
    assert_one_line_error(code, err, *names)
    assert snapshot(work) == before
