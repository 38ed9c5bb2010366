"""A user's first run, against a local Hub server (tests/hubserver.py): the model by id and revision, the six
datasets, `data pull`, `card --push` and `card --from-card`, and the Hub's failures. huggingface_hub and
datasets run unmodified in a subprocess whose HF_ENDPOINT points at the server (they read it at import).

Expected values come from the server's own repos (the commits it made, the sha256 of the files it
serves) and from the reference outputs of the v1 harness, never from evalsuite.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hubserver import GRANTED_TOKEN, HubServer, HubState, add_dataset, dir_files

from conftest import GOLDEN, run_cli
from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.card.splice import END_MARKER, START_MARKER

MODEL = "evalsuite-test/tiny-merge"
GATED = "evalsuite-test/gated-merge"
# main: the reference MoE with a card; v1: the reference dense model, an older revision of the repo
REVISIONS = {"main": "tiny-moe", "v1": "tiny-llama"}
CARD = "---\nlicense: mit\ntags:\n- moe\n---\n# tiny merge\n\nA merge of tiny experts.\n\n## Usage\n\nLoad it.\n"


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    state = HubState()
    repo = state.add("model", MODEL)
    older = repo.commit(dir_files(GOLDEN / "models" / REVISIONS["v1"]), ref="v1")
    repo.commit({**dir_files(GOLDEN / "models" / REVISIONS["main"]), "README.md": CARD.encode()}, "main", older)
    state.add("model", GATED, gated=True).commit(dir_files(GOLDEN / "models" / "tiny-moe"), ref="main")
    for dataset in sorted({spec.dataset for spec in BENCHMARKS}):
        add_dataset(state, GOLDEN / "data", dataset)
    with HubServer(state) as server:
        yield server


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hf-home")


def evalsuite(hub: HubServer, hf_home: Path, *argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, online against the local Hub (tests run offline otherwise)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN")}
    environ.update({"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(hf_home), "HF_HUB_DISABLE_TELEMETRY": "1", **env})
    command = [str(Path(sys.executable).with_name("evalsuite")), *argv]  # the installed command, as users run it
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=600)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.slow
def test_each_revision_is_evaluated_at_its_commit_with_its_weights(hub, hf_home, tmp_path):
    repo = hub.state.repos[("model", MODEL)]
    for revision, reference in REVISIONS.items():
        out = tmp_path / revision
        done = evalsuite(
            hub, hf_home, "run", "--model", MODEL, "--revision", revision, "--data-dir", str(GOLDEN / "data"),
            "--benchmarks", "arc,truthfulqa", "--limit", "3", "--output-dir", str(out), "--no-progress", cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        model = results(out)["model"]
        assert (model["id"], model["revision"], model["commit"]) == (MODEL, revision, repo.refs[revision])
        # the digest of the weights that revision holds, as served (the Hub's LFS sha256 of the file)
        weights = GOLDEN / "models" / reference / "model.safetensors"
        assert model["weights_sha256"] == {"model.safetensors": sha256(weights)}
        # and those weights answered: the run agrees with the v1 harness's outputs for that model
        assert run_cli("verify", str(out), "--against", str(GOLDEN / "golden" / reference), "--subset") == 0
    commits = {results(tmp_path / r)["model"]["commit"] for r in REVISIONS}
    assert len(commits) == 2


@pytest.mark.slow
def test_a_downloaded_model_runs_offline_from_the_cache_at_the_same_commit(hub, hf_home, tmp_path):
    repo = hub.state.repos[("model", MODEL)]
    args = ("run", "--model", MODEL, "--revision", "v1", "--data-dir", str(GOLDEN / "data"), "--benchmarks", "arc",
            "--limit", "2", "--no-progress")  # fmt: skip
    assert evalsuite(hub, hf_home, *args, "--output-dir", str(tmp_path / "online"), cwd=tmp_path).returncode == 0
    # offline, and no Hub to ask at all
    offline = {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    done = evalsuite(hub, hf_home, *args, "--output-dir", str(tmp_path / "offline"), cwd=tmp_path, **offline)
    assert done.returncode == 0, done.stderr
    model = results(tmp_path / "offline")["model"]
    assert (model["revision"], model["commit"]) == ("v1", repo.refs["v1"])
    weights = GOLDEN / "models" / REVISIONS["v1"] / "model.safetensors"
    assert model["weights_sha256"] == {"model.safetensors": sha256(weights)}
    a, b = (
        json.loads((tmp_path / d / "samples" / "arc.jsonl").read_text().splitlines()[0]) for d in ("online", "offline")
    )
    assert a == b
    # a revision never downloaded: one line saying how to get it
    missing = evalsuite(hub, hf_home, *args[:4], "no-such-branch", *args[5:], "--output-dir", str(tmp_path / "x"),
                        cwd=tmp_path, **offline)  # fmt: skip
    one_line_error(missing, "not in the Hugging Face cache", "HF_HUB_OFFLINE")


@pytest.mark.slow
def test_the_six_datasets_come_from_the_hub_at_recorded_commits_and_data_pull_reproduces_the_run(
    hub, hf_home, tmp_path
):
    online = tmp_path / "online"
    args = ("run", "--model", MODEL, "--limit", "2", "--no-progress", "--no-router-stats")
    done = evalsuite(hub, hf_home, *args, "--output-dir", str(online), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    provenance = results(online)["provenance"]
    expected = {
        f"{spec.dataset}/{config}/{split}": f"{spec.dataset}@{hub.state.repos[('dataset', spec.dataset)].refs['main']}"
        for spec in BENCHMARKS
        for config in spec.configs
        for split in spec.splits()
    }
    assert provenance["data_source"] == "hub" and provenance["data_files"] == expected
    assert not (online / ".eval_results").exists()  # a smoke run publishes nothing

    pulled = tmp_path / "pulled"
    assert evalsuite(hub, hf_home, "data", "pull", str(pulled), cwd=tmp_path).returncode == 0
    import pyarrow.parquet as pq

    read = sorted(Path(key + ".parquet") for key in expected)  # every split the benchmarks read, no other
    assert sorted(p.relative_to(pulled) for p in pulled.rglob("*.parquet")) == read
    for rel in read:  # the rows the Hub served, as they were
        assert pq.read_table(pulled / rel).equals(pq.read_table(GOLDEN / "data" / rel)), rel

    asked = len(hub.state.requests)
    offline = tmp_path / "offline"
    done = evalsuite(hub, hf_home, *args, "--data-dir", str(pulled), "--output-dir", str(offline), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not [p for _, p in hub.state.requests[asked:] if p.startswith(("/datasets/", "/api/datasets/"))]
    for spec in BENCHMARKS:
        name = f"samples/{spec.name}.jsonl"
        assert (offline / name).read_bytes() == (online / name).read_bytes(), name
    # the offline run records the Hub commits its copies came from
    assert results(offline)["provenance"]["data_origins"] == expected


def without_our_parts(card: str) -> str:
    """The card less evalsuite's two parts: the model-index key of its front matter and the marked block."""
    head, body = card[4:].split("\n---\n", 1)
    lines = head.split("\n")
    start = lines.index("model-index:")
    inside = range(start + 1, len(lines))
    end = next((i for i in inside if lines[i] and not lines[i].startswith((" ", "-"))), len(lines))
    block = body[body.index(START_MARKER) : body.index(END_MARKER) + len(END_MARKER) + 1]
    return "---\n" + "\n".join(lines[:start] + lines[end:]) + "\n---\n" + body.replace(block, "")


@pytest.mark.slow
def test_push_opens_a_pull_request_of_the_card_and_its_eval_results_then_the_card_reads_back(
    hub, hf_home, tmp_path, golden_runs
):
    run_dir = golden_runs("tiny-moe")
    repo = hub.state.repos[("model", MODEL)]
    main_before = repo.refs["main"]
    url = "https://example.org/runs/tiny-merge"
    done = evalsuite(hub, hf_home, "card", str(run_dir), "--push", MODEL, "--details-url", url, cwd=tmp_path,
                     HF_TOKEN="hf_user")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(repo.prs) == 1 and repo.refs["main"] == main_before  # a pull request, main untouched
    pr = repo.prs[0]
    assert pr.parent == main_before and repo.refs[f"refs/pr/{pr.num}"] == pr.commit
    assert f"/discussions/{pr.num}" in done.stdout
    assert sorted(pr.files) == sorted(["README.md", *(f".eval_results/{s.name}.yaml" for s in BENCHMARKS)])
    readme = pr.files["README.md"].decode()
    assert without_our_parts(readme) == CARD  # every byte outside evalsuite's parts as it was
    scores = results(run_dir)["benchmarks"]
    for spec in BENCHMARKS:
        [entry] = yaml.safe_load(pr.files[f".eval_results/{spec.name}.yaml"])
        assert entry["dataset"]["id"] == spec.dataset
        assert entry["value"] == round(100 * scores[spec.name]["value"], 2)
        assert entry["source"]["url"] == url

    # the maintainer merges it; the published card reads back with the run's card values
    repo.refs["main"] = pr.commit
    done = evalsuite(hub, hf_home, "card", "--from-card", MODEL, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    published = json.loads(done.stdout)
    card_values = {name: round(100 * s["value"], 2) for name, s in scores.items()}  # percent, 2 decimals
    assert {name: s["value"] for name, s in published["benchmarks"].items()} == pytest.approx(
        {name: value / 100 for name, value in card_values.items()}, abs=1e-12
    )
    repo.refs["main"] = main_before


def run_args(model: str, out: Path, *more: str) -> tuple[str, ...]:
    return ("run", "--model", model, *more, "--data-dir", str(GOLDEN / "data"), "--benchmarks", "arc",
            "--limit", "1", "--output-dir", str(out), "--no-progress")  # fmt: skip


@pytest.mark.parametrize(
    ("model", "more", "env", "words"),
    [
        (MODEL.replace("tiny", "no"), (), {}, ("does not exist", "check the id", "HF_TOKEN")),
        (GATED, (), {}, ("is gated", "no token was sent", f"{GATED}", "HF_TOKEN")),
        (GATED, (), {"HF_TOKEN": "hf_not_granted"}, ("is gated", "not been granted", "accept its conditions")),
        (MODEL, ("--revision", "no-such-branch"), {}, ("has no revision 'no-such-branch'", "branch, tag or commit")),
    ],
    ids=["missing-repo", "gated-no-token", "gated-not-granted", "missing-revision"],
)
def test_a_repo_the_hub_refuses_is_one_line_naming_the_fix_and_nothing_is_written(
    hub, hf_home, tmp_path, model, more, env, words
):
    out = tmp_path / "out"
    done = evalsuite(hub, hf_home, *run_args(model, out, *more), cwd=tmp_path, **env)
    one_line_error(done, *words)
    assert list(tmp_path.iterdir()) == []  # no run directory, no staging directory


def test_a_granted_token_opens_the_gated_repo(hub, hf_home, tmp_path):
    """The gate is the server's, not evalsuite's: with access, the same command gets past it (to the model)."""
    done = evalsuite(hub, hf_home, "card", "--from-card", GATED, cwd=tmp_path, HF_TOKEN=GRANTED_TOKEN)
    one_line_error(done, f"{GATED}: the Hub repo has no README.md")


@pytest.mark.parametrize("data", ["--data-dir", "hub"])
def test_a_hub_that_does_not_answer_fails_within_the_timeout_naming_it(hub, hf_home, tmp_path, data):
    out = tmp_path / "out"
    argv = run_args(MODEL, out) if data == "--data-dir" else ("run", "--model", MODEL, "--output-dir", str(out))
    hub.state.stall = 4.0
    try:
        started = time.monotonic()
        done = evalsuite(hub, hf_home, *argv, cwd=tmp_path, HF_HUB_ETAG_TIMEOUT="1")
        took = time.monotonic() - started
    finally:
        hub.state.stall = 0.0
    kind = "model" if data == "--data-dir" else "dataset"
    one_line_error(done, f"{kind} ", "did not answer within 1 s", "HF_HUB_ETAG_TIMEOUT")
    assert took < 30  # one request's timeout, not huggingface_hub's retries
    assert list(tmp_path.iterdir()) == []


def test_push_to_a_missing_repo_leaves_the_local_card_and_its_eval_results_as_they_were(hub, hf_home, tmp_path):
    from test_card import NEW, make_run, write_run

    card = tmp_path / "README.md"
    card.write_text(CARD)
    run_dir = write_run(tmp_path / "run", make_run(NEW, model=MODEL))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    done = evalsuite(hub, hf_home, "card", str(run_dir), "--update", str(card), "--push", "evalsuite-test/missing",
                     "--details-url", "https://example.org/run", cwd=tmp_path, HF_TOKEN="hf_user")  # fmt: skip
    one_line_error(done, "evalsuite-test/missing does not exist", "nothing was pushed or written")
    assert card.read_text() == CARD
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
