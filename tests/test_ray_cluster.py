"""Data parallel against a real Ray cluster started here with `ray start` (a head and a worker node on this
machine, Ray's token authentication on): a node lost while its replica loads, SIGTERM, which cluster a run
without --ray-address joins (none), and an address nothing answers on."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import GOLDEN, run_cli

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

RAY = Path(sys.executable).parent / "ray"
MODEL = GOLDEN / "models" / "tiny-moe"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    address: str
    env: dict[str, str]  # what every node and client of it needs (its temp dir, the auth token)
    groups: dict[str, int]  # node -> process group of its `ray start` (its raylet, agents, monitors)


def kill_node(group: int) -> None:
    """SIGKILL a node: its processes and the workers its raylet started (each in a group of its own)."""
    members = [p for p in psutil.process_iter() if _group_of(p) == group]
    for p in [*members, *(c for m in members for c in _children(m))]:
        with contextlib.suppress(psutil.Error):
            p.kill()


def _group_of(p: psutil.Process) -> int | None:
    try:
        return os.getpgid(p.pid)
    except OSError:
        return None


def _children(p: psutil.Process) -> list[psutil.Process]:
    try:
        return p.children(recursive=True)
    except psutil.Error:
        return []


def _start(env: dict[str, str], *args: str) -> int:
    proc = subprocess.Popen(
        [str(RAY), "start", "--num-cpus=1", "--disable-usage-stats", *args],
        env=env,
        start_new_session=True,  # the node's processes get this group: the test can kill the node alone
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return proc.pid


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Ray's socket paths must stay under ~100 characters: a short temp dir of its own, which also holds its
    # "current cluster" file, so nothing here touches /tmp/ray.
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    port = free_port()
    env = {
        **os.environ,
        "RAY_TMPDIR": temp,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
        # a busy 2-core machine starts a node's agents slowly; a lost node is noticed within seconds
        "RAY_raylet_start_wait_time_s": "120",
        "RAY_agent_register_timeout_ms": "120000",
        "RAY_health_check_period_ms": "1000",
        "RAY_health_check_failure_threshold": "3",
        "OMP_NUM_THREADS": "1",
    }
    groups: dict[str, int] = {}
    try:
        groups["head"] = _start(env, "--head", f"--port={port}", "--include-dashboard=false")
        groups["worker"] = _start(env, f"--address=127.0.0.1:{port}")
        yield Cluster(f"127.0.0.1:{port}", env, groups)
    finally:
        for group in groups.values():
            kill_node(group)
        shutil.rmtree(temp, ignore_errors=True)


def command(out: Path, *extra: str) -> list[str]:
    return [
        "run", "--model", str(MODEL), "--data-dir", str(GOLDEN / "data"), "--output-dir", str(out),
        "--benchmarks", "arc", "--limit", "4", "--no-progress", *extra,
    ]  # fmt: skip


def evalsuite(cluster: Cluster, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "evalsuite.cli", *argv],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    assert run_cli(*command(out)) == 0
    return out


def same_samples(one: Path, other: Path) -> None:
    assert (one / "samples" / "arc.jsonl").read_bytes() == (other / "samples" / "arc.jsonl").read_bytes()
    a, b = (json.loads((d / "results.json").read_text()) for d in (one, other))
    assert a["benchmarks"] == b["benchmarks"]


@pytest.mark.slow
def test_sigterm_stops_a_data_parallel_run_cleanly(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = evalsuite(cluster, *command(out, "--data-parallel", "2", "--ray-address", cluster.address))
    deadline = time.monotonic() + 300
    store = tmp_path / ".run.partial" / ".resume" / "answers.jsonl"
    while not (store.exists() and store.stat().st_size):  # replicas loaded and answering
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-3000:]
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 128 + signal.SIGTERM, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: stopped by SIGTERM") and "--resume" in lines[0], err


@pytest.mark.slow
def test_a_node_lost_while_its_replica_loads_leaves_the_run_of_one_process(
    cluster: Cluster, one_process: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    run = evalsuite(cluster, *command(out, "--data-parallel", "2", "--ray-address", cluster.address))
    worker = cluster.groups["worker"]
    deadline = time.monotonic() + 300
    loading = None
    while loading is None:  # a replica's process, started by the worker node's raylet, still in __init__
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-3000:]
        for p in psutil.process_iter(["ppid", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "Replica.__init__" in cmd and _group_of(psutil.Process(p.info["ppid"])) == worker:
                loading = cmd
        time.sleep(0.02)
    kill_node(worker)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    engine = json.loads((out / "results.json").read_text())["engine"]
    lost = engine["data_parallel"]["replicas_lost"]
    assert len(lost) == 1 and f"replica-{lost[0]}-" in loading
    # the fast backend's budget: the surviving replica's own choice, recorded, and the one it used
    assert list(engine["data_parallel"]["replica_budgets"]) == [str(1 - lost[0])]
    assert engine["max_batch_tokens"] == engine["data_parallel"]["replica_budgets"][str(1 - lost[0])]
    # one line of evalsuite's about it, nothing of Ray's
    assert err.strip().splitlines() == [
        f"warning: data parallel: replica {lost[0]} was lost while loading the model (ActorDiedError: its process "
        "or node is gone); its share goes to the other replicas"
    ]
    same_samples(one_process, out)


@pytest.mark.slow
def test_no_ray_address_runs_beside_a_live_cluster_in_a_private_instance(
    cluster: Cluster, one_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster above is alive and named in its temp dir's current-cluster file."""
    assert (Path(cluster.env["RAY_TMPDIR"]) / "ray" / "ray_current_cluster").exists()
    monkeypatch.setenv("RAY_TMPDIR", cluster.env["RAY_TMPDIR"])
    out = tmp_path / "run"
    assert run_cli(*command(out, "--data-parallel", "2")) == 0
    same_samples(one_process, out)


def test_no_ray_address_ignores_a_stale_cluster_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `ray start` on this machine since stopped: its file names an address nothing answers on."""
    from evalsuite.engine.base import ParallelOptions
    from evalsuite.engine.parallel import _start_ray

    stale = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    (Path(stale) / "ray").mkdir()
    (Path(stale) / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("RAY_TMPDIR", stale)
    try:
        assert _start_ray(ParallelOptions(replicas=2)) is True  # started an instance of its own
        assert len(ray.nodes()) == 1 and ray.cluster_resources()["CPU"] >= 2
    finally:
        ray.shutdown()
        shutil.rmtree(stale, ignore_errors=True)


def test_an_unreachable_ray_address_is_one_line_within_seconds(tmp_path: Path, capsys) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    code = run_cli(*command(tmp_path / "run", "--data-parallel", "2", "--ray-address", address))
    err = capsys.readouterr().err
    assert code == 1 and time.monotonic() - started < 60
    assert err.startswith(f"error: --ray-address {address}: cannot reach the Ray cluster") and err.count("\n") == 1
    assert "ray status --address" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()
