"""A new backend is one module and one registry line: this test module is the toy backend's module (its
`load` below), registered by one line, and runs the whole suite through the pipeline, through an
interrupted and resumed run, and on two data-parallel replicas, each time giving the same run.

The toy answers from the request text alone (no model): a log-likelihood from the characters of the
continuation, a fixed GSM8k-style generation. It records each request it is asked in a log (a file named
by LOG_ENV) and can fail after a number of answers (FAIL_ENV), as a process that dies mid-run would.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.model import LM

from conftest import GOLDEN, run_cli
from evalsuite.engine.base import Backend, BackendOptions, Calls
from evalsuite.engine.model_files import ModelFiles
from evalsuite.errors import ModelError
from evalsuite.paths import display_path
from evalsuite.results import ModelInfo

LOG_ENV = "TOY_BACKEND_LOG"
FAIL_ENV = "TOY_BACKEND_FAIL_AFTER"
GENERATION = " She has 3 + 4 = 7 apples.\n#### 7\n\nQuestion: and then"


# --- the toy backend: all a backend needs ----------------------------------------------------------------


class ToyLM(LM):
    def __init__(self) -> None:
        super().__init__()
        self.log = Path(os.environ[LOG_ENV])
        fail = os.environ.get(FAIL_ENV)
        self.left = int(fail) if fail else None

    def _answer(self, request_type: str, args: tuple[Any, ...], answer: Any) -> Any:
        if self.left is not None:
            if self.left == 0:
                raise ModelError("toy backend: stopped as told")
            self.left -= 1
        self.cache_hook.add_partial(request_type, args, answer)
        with self.log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps([request_type, list(args)], sort_keys=True) + "\n")
        return answer

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        def score(continuation: str) -> float:
            return -sum((ord(c) * 31) % 17 for c in continuation) / 8 - len(continuation) / 5

        return [self._answer("loglikelihood", r.args, (score(r.args[1]), False)) for r in requests]

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        out = []
        for r in requests:
            text = GENERATION
            for stop in r.args[1]["until"]:
                text = text.split(stop)[0]
            out.append(self._answer("generate_until", r.args, text))
        return out

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError


@dataclass
class ToyBackend(Backend):
    lm: ToyLM
    info: ModelInfo
    calls: Calls = Calls(per_call={"loglikelihood": 100, "generate_until": 7})


def load(options: BackendOptions, files: ModelFiles) -> ToyBackend:
    info = ModelInfo(
        id=display_path(files.model), commit=files.commit, dtype="float32", devices=("cpu",),
        max_length=files.max_length, weights_sha256=dict(files.weights_sha256), engine=f"{__name__}.ToyLM",
    )  # fmt: skip
    return ToyBackend(ToyLM(), info)


# --- the tests -------------------------------------------------------------------------------------------


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The registry line, and the toy's log; Ray replicas import this module through PYTHONPATH."""
    from evalsuite.engine.registry import BACKENDS

    monkeypatch.setitem(BACKENDS, "toy", __name__)
    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p))
    log = tmp_path / "asked.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    return log


def _run(out: Path, *extra: str) -> int:
    model = str(GOLDEN / "models" / "tiny-moe")
    return run_cli(
        "run", "--model", model, "--data-dir", str(GOLDEN / "data"), "--output-dir", str(out), "--backend", "toy",
        "--no-progress", *extra,
    )  # fmt: skip


def _asked(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _same_run(one: Path, two: Path) -> None:
    names = sorted(p.name for p in (one / "samples").iterdir())
    assert len(names) == 6 and names == sorted(p.name for p in (two / "samples").iterdir())
    for name in names:
        assert (one / "samples" / name).read_bytes() == (two / "samples" / name).read_bytes(), name
    a, b = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert a["benchmarks"] == b["benchmarks"] and a["average"] == b["average"]
    assert (one / "metrics.md").read_bytes() == (two / "metrics.md").read_bytes()


@pytest.mark.slow
def test_a_toy_backend_runs_the_suite_resumes_and_runs_on_replicas(
    toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1. the whole suite in one process
    whole = tmp_path / "whole"
    assert _run(whole) == 0
    results = json.loads((whole / "results.json").read_text())
    assert results["engine"]["backend"] == "toy" and results["model"]["engine"].endswith(".ToyLM")
    assert sorted(results["benchmarks"]) == ["arc", "gsm8k", "hellaswag", "mmlu", "truthfulqa", "winogrande"]
    gsm8k = [json.loads(line) for line in (whole / "samples" / "gsm8k.jsonl").read_text().splitlines()]
    assert {doc["extracted"] for doc in gsm8k} == {"7"}  # the generation reached scoring
    asked = _asked(toy)  # a request in two calls (a choice shared by two documents) is asked in each
    assert len(set(asked)) > 1000

    # 2. interrupted after 500 answers, then resumed: the same run, nothing asked twice
    toy.unlink()
    resumed = tmp_path / "resumed"
    monkeypatch.setenv(FAIL_ENV, "500")
    assert _run(resumed) == 1
    assert "toy backend: stopped as told" in capsys.readouterr().err
    first = set(_asked(toy))
    assert len(_asked(toy)) == 500 and not resumed.exists()
    toy.unlink()
    monkeypatch.delenv(FAIL_ENV)
    assert _run(resumed, "--resume") == 0
    assert f"{len(first)} requests already answered" in capsys.readouterr().err
    _same_run(whole, resumed)
    second = set(_asked(toy))
    assert not first & second and first | second == set(asked)  # nothing kept was asked again

    # 3. two data-parallel replicas on Ray, each loading the toy from this module
    pytest.importorskip("ray")
    toy.unlink()
    parallel = tmp_path / "parallel"
    assert _run(parallel, "--data-parallel", "2") == 0
    _same_run(whole, parallel)
    engine = json.loads((parallel / "results.json").read_text())["engine"]
    assert engine["data_parallel"]["replicas"] == 2 and engine["data_parallel"]["replicas_lost"] == []
    assert sorted(_asked(toy)) == sorted(asked)  # the same calls as one process, each in one replica


def test_an_unknown_backend_is_one_line_naming_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert _run(tmp_path / "out") == 1  # no registry line for "toy" here
    err = capsys.readouterr().err
    assert err.startswith("error: backend 'toy' is unknown") and "hf" in err and "fast" in err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()
