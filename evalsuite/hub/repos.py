"""Repos on the Hub: the commit a revision resolves to and its files, one file at a commit, a pull request.

Every metadata request has a timeout (huggingface_hub's HF_HUB_ETAG_TIMEOUT): without one, huggingface_hub
waits for a Hub that does not answer forever. Failures are HubErrors naming the fix (hub/errors.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evalsuite.hub.errors import hub_error, timeout

if TYPE_CHECKING:
    from huggingface_hub import HfApi


@dataclass(frozen=True)
class RepoSnapshot:
    """A repo at one commit: its files, and the sha256 the Hub declares for each LFS file (weights, data)."""

    repo_id: str
    revision: str | None  # as asked (None: the default branch)
    commit: str
    files: tuple[str, ...]
    lfs_sha256: Mapping[str, str] = field(default_factory=dict)


def api() -> HfApi:
    from huggingface_hub import HfApi

    from evalsuite import __version__

    return HfApi(library_name="evalsuite", library_version=__version__)


def snapshot(
    repo_id: str, revision: str | None = None, kind: str = "model", *, fix: str = "", lfs: bool = False
) -> RepoSnapshot:
    """The commit `revision` names now, with its files: one request, so the files are those of that commit.
    `lfs`: also the sha256 the Hub declares for each LFS file (per-file metadata the Hub computes on request)."""
    try:
        info = api().repo_info(repo_id, revision=revision, repo_type=kind, files_metadata=lfs, timeout=timeout())
    except Exception as exc:
        raise hub_error(exc, repo_id, kind, revision, fix=fix) from exc
    siblings = getattr(info, "siblings", None) or []
    return RepoSnapshot(
        repo_id=repo_id,
        revision=revision,
        commit=str(info.sha),
        files=tuple(s.rfilename for s in siblings),
        lfs_sha256={s.rfilename: s.lfs.sha256 for s in siblings if getattr(s, "lfs", None) is not None},
    )


def read_file(repo_id: str, path: str, commit: str, kind: str = "model", *, fix: str = "") -> str | None:
    """A text file of the repo at `commit`; None when the repo has no such file."""
    from pathlib import Path

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        local = hf_hub_download(repo_id, path, revision=commit, repo_type=kind, etag_timeout=timeout())
    except RemoteEntryNotFoundError:
        return None
    except Exception as exc:
        raise hub_error(exc, repo_id, kind, commit, fix=fix) from exc
    return Path(local).read_text(encoding="utf-8")


def open_pull_request(
    repo_id: str, files: Mapping[str, bytes], message: str, parent_commit: str | None = None, *, fix: str = ""
) -> str:
    """One commit adding or replacing `files` (path in repo -> bytes), opened as a pull request on the repo's
    default branch; returns the pull request's URL. `parent_commit`: the commit the files were made from
    (the Hub refuses the commit when the branch has moved since)."""
    from huggingface_hub import CommitOperationAdd

    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data) for path, data in files.items()]
    try:
        info = api().create_commit(
            repo_id, operations, commit_message=message, create_pr=True, parent_commit=parent_commit
        )
    except Exception as exc:
        raise hub_error(exc, repo_id, fix=fix) from exc
    return str(info.pr_url or info.commit_url)
