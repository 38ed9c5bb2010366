"""A failed Hub request as one line that names the fix: a missing repo, a gated one, a missing revision or
file, a Hub that does not answer. huggingface_hub and datasets wrap these errors in their own (datasets'
DatasetNotFoundError, huggingface_hub's LocalEntryNotFoundError), so the whole chain of causes is read."""

from __future__ import annotations

from collections.abc import Iterator

from evalsuite.errors import EvalsuiteError, HubError, one_line


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def timeout() -> float:
    """Seconds a metadata request may take: huggingface_hub's own setting for them (HF_HUB_ETAG_TIMEOUT)."""
    from huggingface_hub import constants

    return float(constants.HF_HUB_ETAG_TIMEOUT)


def repo_url(repo_id: str, kind: str = "model") -> str:
    return f"{endpoint()}/{'' if kind == 'model' else kind + 's/'}{repo_id}"


def explain(exc: BaseException, repo_id: str, kind: str = "model", revision: str | None = None) -> str:
    """What went wrong with `repo_id` and how to fix it, from the first error in the chain evalsuite knows."""
    import httpx2
    from huggingface_hub import errors

    what = f"{kind} {repo_id}"
    for e in _chain(exc):
        if isinstance(e, errors.GatedRepoError):
            asked = "you have not been granted access" if e.response.status_code == 403 else "no token was sent"
            return (
                f"{what} is gated and {asked}: accept its conditions at {repo_url(repo_id, kind)}, then set "
                "HF_TOKEN to a token of that account (or run `hf auth login`)"
            )
        if isinstance(e, errors.RevisionNotFoundError):
            see = repo_url(repo_id, kind)
            return f"{what} has no revision {revision!r}: give an existing branch, tag or commit (see {see})"
        if isinstance(e, errors.RepositoryNotFoundError):
            return (
                f"{what} does not exist on {endpoint()} (or is private): check the id; for a private repo set "
                "HF_TOKEN to a token that can read it"
            )
        if isinstance(e, errors.OfflineModeIsEnabled):
            return f"{what}: HF_HUB_OFFLINE is set, so the Hub is not asked: unset it to use the Hub"
        if isinstance(e, httpx2.TimeoutException | TimeoutError):
            return (
                f"{what}: the Hub at {endpoint()} did not answer within {timeout():g} s; check your connection "
                "and HF_ENDPOINT, or raise HF_HUB_ETAG_TIMEOUT"
            )
        if isinstance(e, httpx2.NetworkError | ConnectionError):
            return (
                f"{what}: cannot reach the Hub at {endpoint()} ({one_line(e)}); check your connection and HF_ENDPOINT"
            )
    return f"{what}: the Hub request failed ({type(exc).__name__}: {one_line(exc)})"


def hub_error(
    exc: BaseException, repo_id: str, kind: str = "model", revision: str | None = None, *, fix: str = ""
) -> EvalsuiteError:
    """`exc` as a HubError; `fix` adds what else the user can do (e.g. work offline)."""
    return HubError(explain(exc, repo_id, kind, revision) + (f"; {fix}" if fix else ""))
