"""How paths and command lines are recorded and linked: relative or under `~`, valid Markdown, no secrets."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from markdown_it import MarkdownIt
from test_card import NEW, make_run, write_run

from conftest import GOLDEN, run_cli
from evalsuite.paths import REDACTED, display_path, link_target, public_command

TOKEN = "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"


@pytest.fixture
def home_and_cwd(tmp_path, monkeypatch):
    home, cwd = tmp_path / "home" / "user", tmp_path / "work"
    home.mkdir(parents=True)
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    return home, cwd


def test_display_path_is_relative_to_the_working_directory_or_under_home(home_and_cwd, tmp_path):
    home, cwd = home_and_cwd
    assert display_path(cwd / "results" / "run") == "./results/run"
    assert display_path(home / "models" / "tiny") == "~/models/tiny"
    assert display_path(home) == "~"
    assert display_path(tmp_path / "elsewhere") == (tmp_path / "elsewhere").as_posix()
    assert display_path("models/tiny") == "models/tiny"  # as given when relative
    assert display_path("org/model") == "org/model"  # a Hub id is not a path


def test_the_command_line_keeps_paths_short_and_drops_tokens(home_and_cwd):
    home, cwd = home_and_cwd
    sha = "0123456789abcdef0123456789abcdef01234567"
    argv = [
        str(home / ".venv/bin/evalsuite"), "run", "--model", str(home / "m"), "--revision", sha,
        "--hf-token", "anything", f"--api-key={TOKEN}", f"HF_TOKEN={TOKEN}", f"--note={TOKEN}x",
        "--output-dir", str(cwd / "out"), "--data-dir=https://user:pa55@example.org/data",
    ]  # fmt: skip
    assert public_command(argv) == (
        "~/.venv/bin/evalsuite", "run", "--model", "~/m", "--revision", sha,  # a commit sha is kept
        "--hf-token", REDACTED, f"--api-key={REDACTED}", f"HF_TOKEN={REDACTED}", f"--note={REDACTED}",
        "--output-dir", "./out", f"--data-dir=https://user:{REDACTED}@example.org/data",
    )  # fmt: skip


def _links(markdown: str) -> list[str]:
    """The hrefs of the links an independent CommonMark parser finds."""
    tokens = MarkdownIt("commonmark").parseInline(markdown)
    return [t.attrs["href"] for tok in tokens for t in tok.children or [] if t.type == "link_open"]


@pytest.mark.parametrize("path", ["my runs/run 1", "a (b)/c", "x]y/[z]", "50%/d<e>", "naïve/é"])
def test_a_link_to_any_path_is_valid_markdown(path):
    (href,) = _links(f"Detailed results can be found [here]({link_target(path)})")
    assert unquote(href) == path


def test_an_absolute_path_links_as_itself_and_urls_keep_their_encoding():
    (href,) = _links(f"[here]({link_target('/data/my runs/x')})")
    assert unquote(href) == "/data/my runs/x"
    url = "https://huggingface.co/datasets/org/details_a__b?x=1%2C2"
    assert link_target(url) == url


def test_a_card_for_a_run_under_a_path_with_spaces_links_it(tmp_path, capsys):
    run_dir = tmp_path / "my runs" / "run (1)"
    run_dir.mkdir(parents=True)
    write_run(run_dir, make_run(NEW))
    card = tmp_path / "card dir" / "README.md"
    card.parent.mkdir()
    card.write_text("---\nlicense: mit\n---\n# m\n")
    assert main_card(str(run_dir), "--update", str(card)) == 0
    text = card.read_text()
    details = next(line for line in text.splitlines() if line.startswith("Detailed results"))
    (href,) = _links(details)
    assert (card.parent / unquote(href)).resolve() == run_dir.resolve()


def test_updating_a_card_that_is_a_link_names_the_backup_that_exists(tmp_path, capsys):
    """The link stays a link, its target is written, and the message names the backup where it is."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run(run_dir, make_run(NEW))
    target = tmp_path / "cards" / "target.md"
    target.parent.mkdir()
    target.write_text("---\nlicense: mit\n---\n# m\n")
    link = tmp_path / "cards" / "link.md"
    link.symlink_to(target)
    assert main_card(str(run_dir), "--update", str(link)) == 0
    out = capsys.readouterr().out
    named = out.split("previous version in ", 1)[1].split(")", 1)[0]
    assert Path(named).read_text() == "---\nlicense: mit\n---\n# m\n"  # the card before the update
    assert link.is_symlink() and "model-index" in target.read_text()


def test_a_card_inside_its_run_directory_links_results_json(tmp_path):
    run_dir = write_run(tmp_path / "run", make_run(NEW))
    assert main_card(str(run_dir)) == 0
    (href,) = _links(next(ln for ln in (run_dir / "README.md").read_text().splitlines() if "Detailed" in ln))
    assert href == "results.json" and (run_dir / href).is_file()


def main_card(*argv: str) -> int:
    return run_cli("card", *argv)


@pytest.mark.slow
def test_results_json_has_no_absolute_home_paths(home_and_cwd, monkeypatch):
    home, cwd = home_and_cwd
    model = shutil.copytree(GOLDEN / "models" / "tiny-llama", home / "models" / "tiny-llama")
    arc = Path("allenai") / "ai2_arc" / "ARC-Challenge"
    shutil.copytree(GOLDEN / "data" / arc, home / "data" / arc)
    argv = [
        "run", "--model", str(model), "--data-dir", str(home / "data"), "--output-dir", str(cwd / "out"),
        "--benchmarks", "arc", "--limit", "2", "--no-progress",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", [str(home / ".venv" / "bin" / "evalsuite"), *argv])
    assert run_cli(*argv) == 0
    text = (cwd / "out" / "results.json").read_text(encoding="utf-8")
    assert str(home) not in text and str(cwd) not in text
    data = json.loads(text)
    assert data["model"]["id"] == "~/models/tiny-llama"
    assert data["provenance"]["data_source"] == "dir:~/data"
    assert data["provenance"]["command"][:4] == ["~/.venv/bin/evalsuite", "run", "--model", "~/models/tiny-llama"]
    assert "./out" in data["provenance"]["command"]
    weights = hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
    assert data["model"]["weights_sha256"] == {"model.safetensors": weights}


# --- secrets on every path that prints or writes a user's arguments ---------------------------------

# Each shape a credential takes on a command line, and where it must not show.
SHAPES = [
    ("glued after _ in a path", ["--output-dir", f"runs/model_{TOKEN}"], TOKEN),
    ("glued after - in a path", ["--output-dir", f"runs/model-{TOKEN}"], TOKEN),
    ("URL password", ["--data-dir", "https://user:pa55word@example.org/d"], "pa55word"),
    ("URL user that is a token", ["--data-dir", f"https://{TOKEN}@example.org/d"], TOKEN),
    ("URL query parameter", ["--data-dir", "https://example.org/d?sig=s3cr3t&x=1"], "s3cr3t"),
]


@pytest.mark.parametrize(("shape", "args", "secret"), SHAPES, ids=[s[0] for s in SHAPES])
def test_every_shape_is_redacted_in_the_recorded_command(shape, args, secret):
    recorded = " ".join(public_command(["evalsuite", "run", *args]))
    assert secret not in recorded and REDACTED in recorded


@pytest.mark.parametrize(
    "argv",
    [
        ["--hf-tokne", "plainsecret42"],  # a mistyped credential option: its value has no known shape
        ["--hf-tokne=plainsecret42"],
        ["--token", "plainsecret42", "--no-such-option"],  # a known credential option, another error
        ["--limit", "plainsecret42"],  # a credential pasted into the wrong option...
    ],
)
def test_a_usage_error_never_echoes_a_credential(argv, capsys, tmp_path):
    given = ["run", "--model", str(tmp_path / "m"), *argv]
    code = run_cli(*given)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.rstrip().endswith("see `evalsuite run --help`")  # the help of the command given
    if argv[0] != "--limit":
        assert "plainsecret42" not in err, err


def test_an_error_quoting_a_token_shaped_argument_redacts_it(capsys, tmp_path):
    model, out = tmp_path / f"model-{TOKEN}", tmp_path / "out"
    code = run_cli("run", "--model", str(model), "--data-dir", str(GOLDEN / "data"), "--output-dir", str(out))
    err = capsys.readouterr().err
    assert code == 1 and TOKEN not in err and REDACTED in err


def test_credentials_in_card_urls_stay_out_of_the_card(tmp_path, capsys):
    run = write_run(tmp_path, make_run(NEW))
    card = tmp_path / "card.md"
    code = run_cli(
        "card", str(run), "--output", str(card),
        "--source-url", f"https://user:pa55word@example.org/runs?token={TOKEN}",
        "--details-url", f"https://{TOKEN}@example.org/details",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0
    text = card.read_text()
    assert "pa55word" not in text and TOKEN not in text and "example.org/details" in text
    assert "--source-url: the credentials in the URL are left out of the card" in err and TOKEN not in err


def test_a_count_of_tokens_is_not_a_credential():
    assert public_command(["run", "--max-batch-tokens", "512", "--max-batch-tokens=256"]) == (
        "run", "--max-batch-tokens", "512", "--max-batch-tokens=256",
    )  # fmt: skip
