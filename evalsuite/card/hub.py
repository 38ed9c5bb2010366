"""Model cards on the Hub: fetch a repo's README.md, open a pull request with an updated one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from evalsuite.card.splice import BOM
from evalsuite.errors import CardError, one_line

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

PUSH_MESSAGE = "Add Open LLM Leaderboard v1 evaluation results (evalsuite)"


def hub_card(text: str) -> ModelCard:
    """The ModelCard `--push` uploads: str(card) is `text` byte for byte (ModelCard.content would re-dump
    every front-matter key, undoing the in-place update)."""
    from huggingface_hub import ModelCard

    class VerbatimModelCard(ModelCard):
        @property  # type: ignore[override]
        def content(self) -> str:
            return str(self._content)

        @content.setter
        def content(self, content: str) -> None:
            ModelCard.content.fset(self, content)  # type: ignore[attr-defined]

    return VerbatimModelCard(text.removeprefix(BOM))


def fetch_hub_card(repo_id: str) -> str | None:
    """The repo's README.md on the Hub, or None when it has none."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, "README.md")).read_text(encoding="utf-8")
    except RemoteEntryNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CardError(
            f"--push {repo_id}: cannot fetch its README.md ({one_line(exc)}); check the repo id, your "
            "connection and HF_HUB_OFFLINE, or pass --update with a local copy"
        ) from None


def push_card(text: str, repo_id: str, commit_message: str = PUSH_MESSAGE) -> str:
    """Open a pull request on `repo_id` with the card; returns its URL."""
    card = hub_card(text)
    try:
        info = card.push_to_hub(repo_id, create_pr=True, commit_message=commit_message)
    except (OSError, ValueError) as exc:
        raise CardError(
            f"--push {repo_id}: the Hub refused or could not be reached ({one_line(exc)}); nothing was "
            "pushed or written: check the repo id, your token and connection"
        ) from None
    return str(getattr(info, "pr_url", None) or info)
