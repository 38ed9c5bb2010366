"""Model cards on the Hub: fetch a repo's README.md (and files beside it) at one commit, open a pull request
with the updated card and its .eval_results files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from evalsuite.card.splice import BOM
from evalsuite.errors import CardError
from evalsuite.hub import repos
from evalsuite.results import RunResult

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

PUSH_MESSAGE = "Add Open LLM Leaderboard v1 evaluation results (evalsuite)"


def hub_card(text: str) -> ModelCard:
    """The ModelCard `--push` uploads: str(card) is `text` byte for byte (ModelCard.content would re-dump
    every front-matter key, undoing the in-place update)."""
    from huggingface_hub import ModelCard

    class VerbatimModelCard(ModelCard):
        @property
        def content(self) -> str:
            return str(self._content)

        @content.setter
        def content(self, content: str) -> None:
            ModelCard.content.fset(self, content)  # type: ignore[attr-defined]

    return VerbatimModelCard(text.removeprefix(BOM))


@dataclass(frozen=True)
class HubCard:
    """A model repo's card on the Hub at one commit, and the repo's files at that commit."""

    repo_id: str
    commit: str
    text: str | None  # None: the repo has no README.md
    files: tuple[str, ...]
    fix: str = ""  # what an error reading a file says to do

    def read(self, path: str) -> str | None:
        """Another text file of the repo at the same commit (None when it has none)."""
        if path not in self.files:
            return None
        return repos.read_file(self.repo_id, path, self.commit, fix=self.fix)


_FIX = "nothing was pushed or written (to update a local copy of the card instead, pass --update CARD)"
_PUSH_FIX = "nothing was pushed or written"


def fetch_hub_card(repo_id: str, fix: str = _FIX) -> HubCard:
    """The repo's README.md on the Hub, at the commit its default branch names now."""
    snapshot = repos.snapshot(repo_id, fix=fix)
    card = HubCard(repo_id, snapshot.commit, None, snapshot.files, fix)
    return replace(card, text=card.read("README.md"))


def read_hub_card(repo_id: str) -> RunResult:
    """The published leaderboard results of a Hub model's card (`card --from-card owner/name`)."""
    from evalsuite.card.read import card_result

    card = fetch_hub_card(repo_id, fix="")
    if card.text is None:
        raise CardError(f"{repo_id}: the Hub repo has no README.md (commit {card.commit}); it publishes no card")
    return card_result(
        card.text, f"{repo_id} (README.md on the Hub, commit {card.commit[:12]})", repo_id.split("/")[-1]
    )


def push_card(
    text: str,
    repo_id: str,
    files: Mapping[str, str] | None = None,
    parent_commit: str | None = None,
    commit_message: str = PUSH_MESSAGE,
) -> str:
    """Open a pull request on `repo_id` with the card as README.md and `files` (path in repo -> text, e.g.
    .eval_results/*.yaml) in one commit; returns its URL. `parent_commit`: the commit the card was made
    from (the pull request starts there)."""
    uploads = {"README.md": str(hub_card(text)).encode("utf-8")}
    uploads.update({path: content.encode("utf-8") for path, content in (files or {}).items()})
    return repos.open_pull_request(repo_id, uploads, commit_message, parent_commit, fix=_PUSH_FIX)
