"""Data parallel on Ray: N replicas give the run directory of one process, also when a replica dies."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from conftest import GOLDEN, reference_run, run_cli

ray = pytest.importorskip("ray")

ROUTER_COUNTS = ["benchmark", "layer", "expert", "tokens", "top1_tokens"]


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory: pytest.TempPathFactory):
    """A local Ray instance started by the test, one CPU per replica; the runs join it. Its workers can
    import the test backends (tests/counting_backend.py), which log to the file yielded."""
    import os

    from counting_backend import LOG_ENV

    log = tmp_path_factory.mktemp("counting") / "answers.log"
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", LOG_ENV)}
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parent), saved["PYTHONPATH"]) if p)
    os.environ[LOG_ENV] = str(log)
    try:
        ray.init(num_cpus=2, namespace="evalsuite-tests", include_dashboard=False, log_to_driver=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    yield log
    ray.shutdown()


@pytest.fixture(scope="module", params=["tiny-moe", "tiny-llama"])
def one_and_two(request, ray_instance, golden_runs, tmp_path_factory) -> tuple[Path, Path]:
    """The same model on all the reference data, in one process and on two replicas."""
    one = golden_runs(request.param)
    two = reference_run(
        tmp_path_factory, request.param, "--device", "cpu", "--dtype", "float32", "--data-parallel", "2",
        "--backend", "hf",  # as golden_runs: the same backend on both sides
    )  # fmt: skip
    return one, two


def _same_run(one: Path, two: Path) -> None:
    names = sorted(p.name for p in (one / "samples").iterdir())
    assert names == sorted(p.name for p in (two / "samples").iterdir())
    for name in names:
        assert (one / "samples" / name).read_bytes() == (two / "samples" / name).read_bytes(), name
    a, b = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert a["benchmarks"] == b["benchmarks"]
    assert a["average"] == b["average"]
    assert (one / "metrics.md").read_bytes() == (two / "metrics.md").read_bytes()
    assert (one / "router_stats.parquet").exists() == (two / "router_stats.parquet").exists()
    if (one / "router_stats.parquet").exists():
        import pandas as pd

        x, y = pd.read_parquet(one / "router_stats.parquet"), pd.read_parquet(two / "router_stats.parquet")
        # Token counts add up exactly over the replicas; the weight sums only up to float rounding.
        assert x[ROUTER_COUNTS].equals(y[ROUTER_COUNTS])
        assert ((x["weight_sum"] - y["weight_sum"]).abs() <= 1e-9 * x["weight_sum"].abs().clip(lower=1)).all()
        assert a["router"] == b["router"]  # the summary reads the token counts only


@pytest.mark.slow
def test_two_replicas_write_the_run_of_one_process(one_and_two: tuple[Path, Path]) -> None:
    one, two = one_and_two
    _same_run(one, two)
    engine = json.loads((two / "results.json").read_text())["engine"]
    assert engine["data_parallel"]["replicas"] == 2
    assert engine["data_parallel"]["replicas_lost"] == []
    assert json.loads((one / "results.json").read_text())["engine"]["backend"] == "hf"


def _replica_handle(index: int, timeout: float = 120.0):
    """The running replica `index` of the run in progress, found by its Ray actor name."""
    from evalsuite.engine.parallel import ACTOR_PREFIX

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["name"].startswith(f"{ACTOR_PREFIX}-{index}-"):
                return ray.get_actor(entry["name"], namespace=entry["namespace"])
        time.sleep(0.2)
    raise AssertionError(f"replica {index} never started")


@pytest.mark.slow
@pytest.mark.parametrize("one_and_two", ["tiny-moe"], indirect=True)  # the MoE: router counts too
def test_a_replica_killed_mid_run_leaves_the_same_run(
    one_and_two: tuple[Path, Path],
    ray_instance: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evalsuite.engine.parallel import ACTOR_PREFIX
    from evalsuite.engine.registry import BACKENDS

    one, _ = one_and_two
    model = json.loads((one / "results.json").read_text())["model"]["id"]
    out = tmp_path / "killed"
    codes: list[int] = []
    # the hf backend, logging which replica answers each request (tests/counting_backend.py)
    monkeypatch.setitem(BACKENDS, "counting", "counting_backend")
    argv = ["run", "--model", model, "--data-dir", str(GOLDEN / "data"), "--output-dir", str(out)]
    worker = threading.Thread(
        target=lambda: codes.append(
            run_cli(*argv, "--backend", "counting", "--device", "cpu", "--no-progress", "--data-parallel", "2")
        )
    )
    worker.start()
    replica = _replica_handle(1)
    deadline = time.monotonic() + 300

    def answered_by_replica_1() -> bool:
        lines = ray_instance.read_text().splitlines() if ray_instance.exists() else []
        return any(json.loads(line)[0].startswith(f"{ACTOR_PREFIX}-1-") for line in lines)

    while not answered_by_replica_1():  # it is answering a call
        assert time.monotonic() < deadline and worker.is_alive(), "the run ended before replica 1 answered"
        time.sleep(0.05)
    ray.kill(replica)
    worker.join(timeout=600)
    assert codes == [0]
    assert "replica 1 died" in capfd.readouterr().err
    _same_run(one, out)
    assert json.loads((out / "results.json").read_text())["engine"]["data_parallel"]["replicas_lost"] == [1]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--data-parallel", "0", "must be 1 or more"),
        ("--gpus-per-replica", "-1", "is not a number, 0 or more"),
        ("--cpus-per-replica", "0", "must be 1 or more"),
    ],
)
def test_bad_parallel_options_are_one_line_usage_errors(option, value, message, capsys) -> None:
    code = run_cli("run", "--model", str(GOLDEN / "models" / "tiny-moe"), option, value)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_tensor_parallel_needs_the_vllm_backend(tmp_path: Path, capsys) -> None:
    code = run_cli(
        "run", "--model", str(GOLDEN / "models" / "tiny-moe"), "--tensor-parallel", "2",
        "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "needs --backend vllm" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# --- the vllm backend, up to the construction of lm-eval's engine ----------------------------------


def test_vllm_backend_without_vllm_or_a_gpu_is_one_line(tmp_path: Path, capsys) -> None:
    from importlib.util import find_spec

    code = run_cli(
        "run", "--model", str(GOLDEN / "models" / "tiny-moe"), "--data-dir", str(GOLDEN / "data"),
        "--backend", "vllm", "--output-dir", str(tmp_path / "out"), "--limit", "1",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    # Here (no vLLM, no GPU) the first missing piece is named, with its fix.
    expected = "evalsuite[vllm]" if find_spec("vllm") is None else "needs a CUDA GPU"
    assert expected in err
    assert not (tmp_path / "out").exists()


def test_vllm_engine_is_set_up_as_v1_ran() -> None:
    from transformers import AutoConfig, AutoTokenizer

    from evalsuite.engine.base import BackendOptions
    from evalsuite.engine.model_files import v1_max_length
    from evalsuite.engine.vllm import vllm_arguments

    path = GOLDEN / "models" / "tiny-moe-short"
    options = BackendOptions(model=str(path), backend="vllm", dtype="bfloat16", tensor_parallel=4)
    max_length = v1_max_length(AutoConfig.from_pretrained(path), AutoTokenizer.from_pretrained(path))
    assert max_length == 512  # the reference README: this model has 512 positions
    args = vllm_arguments(options, path, max_length)
    assert args["pretrained"] == str(path)
    assert args["add_bos_token"] is False  # v1 never added one; lm-eval would for this tokenizer
    assert args["max_length"] == 512 and args["truncation_side"] == "left"
    assert args["max_gen_toks"] == 256
    assert args["tensor_parallel_size"] == 4 and args["dtype"] == "bfloat16"
    # Every argument is one lm-eval's VLLM class accepts (read from its source: vllm is not importable here).
    import ast

    import lm_eval

    source = Path(lm_eval.__file__).parent / "models" / "vllm_causallms.py"
    init = next(
        node
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    )
    accepted = {a.arg for a in init.args.args + init.args.kwonlyargs}
    assert set(args) <= accepted
