"""A local stand-in for the Hugging Face Hub's HTTP API, for tests that run huggingface_hub and datasets
unmodified (HF_ENDPOINT pointing here) through evalsuite's Hub paths: a model by id and revision, the
benchmark datasets, a card fetched and pushed as a pull request.

What it answers, and how, is what the installed clients read (huggingface_hub 2.x, datasets 5.x):
- repo info `GET /api/{models,datasets}/<id>[/revision/<rev>]`: `id`, `sha` (the revision's commit) and
  `siblings` (`rfilename`, with `?blobs=true` also `size`, `blobId` and `lfs` {`size`, `sha256`,
  `pointerSize`}) -- hf_api.ModelInfo/DatasetInfo;
- trees `GET /api/<type>s/<id>/tree/<rev>[/<path>]?recursive=&expand=` and `POST .../paths-info/<rev>` (form
  field `paths`): `type` file/directory, `path`, `oid`, `size`, `lfs` {`oid`, `size`, `pointerSize`} --
  hf_api.RepoFile/RepoFolder;
- files `HEAD|GET /[datasets/]<id>/resolve/<rev>/<path>`: `X-Repo-Commit`, `ETag` (the git blob id); LFS
  files (weights, parquet) answer 302 to another origin (`localhost` instead of `127.0.0.1`, as the Hub
  redirects to its CDN) with `X-Linked-Etag` (their sha256) and `X-Linked-Size` on the redirect itself --
  file_download.get_hf_file_metadata, which stops at a redirect off the Hub's origin;
- errors as `X-Error-Code` headers: `RepoNotFound` (401 without a token, as the Hub answers), `GatedRepo`
  (401 without a token, 403 with one not granted), `RevisionNotFound`, `EntryNotFound` --
  utils._http.hf_raise_for_status;
- commits `POST /api/<type>s/<id>/preupload/<rev>` (`uploadMode` regular for everything: small text
  files), `POST .../commit/<rev>?create_pr=1` (ndjson: a `header`, then `file` entries with base64
  content) answering `commitUrl`, `commitOid`, `pullRequestUrl` (`.../discussions/<n>`, the PR's ref is
  `refs/pr/<n>`), and `POST /api/validate-yaml` -- _commit_api and HfApi.create_commit.

Every request is logged in `HubState.requests`; `HubState.stall` makes every answer wait that many seconds
(a Hub that does not answer).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".parquet")
POINTER_SIZE = 134  # bytes of a git-lfs pointer file
GRANTED_TOKEN = "hf_granted_test_token"


def git_oid(data: bytes) -> str:
    """The git blob id of a file, as the Hub reports it (`oid`, ETag of regular files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class PullRequest:
    num: int
    commit: str
    parent: str
    title: str
    files: dict[str, bytes]  # what the commit added or changed


@dataclass
class Repo:
    kind: str  # "model" or "dataset"
    repo_id: str
    refs: dict[str, str] = field(default_factory=dict)  # branch, tag or refs/pr/N -> commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> path -> bytes
    gated: bool = False
    prs: list[PullRequest] = field(default_factory=list)

    def commit(self, files: dict[str, bytes], ref: str | None = None, parent: str | None = None) -> str:
        """Store a snapshot; its id is the sha1 of its parent and its files (unique, as git's are)."""
        h = hashlib.sha1((parent or "").encode())
        for path in sorted(files):
            h.update(path.encode() + b"\0" + git_oid(files[path]).encode())
        sha = h.hexdigest()
        self.commits[sha] = dict(files)
        if ref is not None:
            self.refs[ref] = sha
        return sha

    def resolve(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None


def dir_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@dataclass
class HubState:
    repos: dict[tuple[str, str], Repo] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    stall: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, repo_id: str, gated: bool = False) -> Repo:
        repo = Repo(kind, repo_id, gated=gated)
        self.repos[(kind, repo_id)] = repo
        return repo

    def blob(self, sha256: str) -> bytes | None:
        for repo in self.repos.values():
            for files in repo.commits.values():
                for data in files.values():
                    if hashlib.sha256(data).hexdigest() == sha256:
                        return data
        return None


def entry(path: str, data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "file", "path": path, "oid": git_oid(data), "size": len(data)}
    if path.endswith(LFS_SUFFIXES):
        out["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": POINTER_SIZE}
    return out


def folder(path: str) -> dict[str, Any]:
    return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0}


class Handler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        """Quiet: requests are logged in HubState.requests."""

    # --- plumbing -----------------------------------------------------------------------------------

    @property
    def state(self) -> HubState:
        return self.server.state

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self.send_json(
            {"error": message}, status, {"X-Error-Code": code, "X-Error-Message": message, **(headers or {})}
        )

    def token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ").strip() or None

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def repo(self, kind: str, repo_id: str) -> Repo | None:
        """The repo if this request may read it; otherwise the error is sent and None returned."""
        repo = self.state.repos.get((kind, repo_id))
        token = self.token()
        if repo is None:
            # The Hub answers 401 to an anonymous request for a repo that does not exist (it could be private).
            self.error(401 if token is None else 404, "RepoNotFound", "Repository not found")
            return None
        if repo.gated and token != GRANTED_TOKEN:
            if token is None:
                self.error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must be authenticated.")
            else:
                self.error(403, "GatedRepo", f"Access to model {repo_id} is restricted and you are not in the list.")
            return None
        return repo

    def revision(self, repo: Repo, revision: str) -> str | None:
        commit = repo.resolve(revision)
        if commit is None:
            self.error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    # --- routes -------------------------------------------------------------------------------------

    API = re.compile(
        r"^/api/(models|datasets)/([^/]+/[^/]+)(?:/(revision|tree|paths-info|preupload|commit)(?:/([^/]+))?(/.*)?)?$"
    )
    RESOLVE = re.compile(r"^/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")

    def route(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        with self.state.lock:
            self.state.requests.append((self.command, self.path))
        if self.state.stall:
            time.sleep(self.state.stall)
        if path.startswith("/cdn/"):
            return self.cdn(path.removeprefix("/cdn/"))
        if path == "/api/validate-yaml":
            self.body()
            return self.send_json({"errors": [], "warnings": []})
        m = self.RESOLVE.match(path)
        if m:
            kind = "dataset" if m.group(1) else "model"
            return self.resolve(kind, m.group(2), unquote(m.group(3)), unquote(m.group(4)))
        m = self.API.match(path)
        if m:
            kind = m.group(1)[:-1]
            action, rev, rest = m.group(3), unquote(m.group(4) or "main"), unquote((m.group(5) or "").lstrip("/"))
            repo = self.repo(kind, m.group(2))
            if repo is None:
                return None
            if action in (None, "revision"):
                return self.info(repo, rev, query)
            if action == "tree":
                return self.tree(repo, rev, rest, query)
            if action == "paths-info":
                return self.paths_info(repo, rev)
            if action == "preupload":
                return self.preupload(repo, rev)
            if action == "commit":
                return self.commit(repo, rev, query)
        self.body()
        return self.error(404, "NotFound", f"no such endpoint: {self.command} {path}")

    do_GET = do_HEAD = do_POST = route

    def info(self, repo: Repo, rev: str, query: dict[str, list[str]]) -> None:
        commit = self.revision(repo, rev)
        if commit is None:
            return
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, data in sorted(repo.commits[commit].items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                e = entry(path, data)
                sibling.update(size=e["size"], blobId=e["oid"])
                if "lfs" in e:
                    sibling["lfs"] = {"size": e["size"], "sha256": e["lfs"]["oid"], "pointerSize": POINTER_SIZE}
            siblings.append(sibling)
        self.send_json(
            {"id": repo.repo_id, "sha": commit, "private": False, "gated": "auto" if repo.gated else False,
             "disabled": False, "lastModified": "2024-01-01T00:00:00.000Z", "tags": [], "siblings": siblings}
        )  # fmt: skip

    def tree(self, repo: Repo, rev: str, path: str, query: dict[str, list[str]]) -> None:
        commit = self.revision(repo, rev)
        if commit is None:
            return
        files = repo.commits[commit]
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{path.rstrip('/')}/" if path else ""
        if path and not any(p.startswith(prefix) for p in files):
            return self.error(404, "EntryNotFound", f"{path} does not exist on {rev}", {"X-Repo-Commit": commit})
        out: dict[str, dict[str, Any]] = {}
        for p, data in sorted(files.items()):
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix) :].split("/")
            for depth in range(1, len(parts)):  # the folders on the way
                if recursive or depth == 1:
                    sub = prefix + "/".join(parts[:depth])
                    out.setdefault(sub, folder(sub))
                if not recursive:
                    break
            if recursive or len(parts) == 1:
                out[p] = entry(p, data)
        self.send_json(list(out.values()), headers={"X-Repo-Commit": commit})

    def paths_info(self, repo: Repo, rev: str) -> None:
        form = parse_qs(self.body().decode())
        commit = self.revision(repo, rev)
        if commit is None:
            return
        files = repo.commits[commit]
        out = []
        for p in form.get("paths", []):
            p = p.strip("/")
            if p in files:
                out.append(entry(p, files[p]))
            elif any(f.startswith(p + "/") for f in files):
                out.append(folder(p))
        self.send_json(out)

    def resolve(self, kind: str, repo_id: str, rev: str, path: str) -> None:
        repo = self.repo(kind, repo_id)
        if repo is None:
            return
        commit = self.revision(repo, rev)
        if commit is None:
            return
        data = repo.commits[commit].get(path)
        if data is None:
            return self.error(404, "EntryNotFound", f"{path} does not exist on {rev}", {"X-Repo-Commit": commit})
        headers = {"X-Repo-Commit": commit, "ETag": f'"{git_oid(data)}"'}
        if path.endswith(LFS_SUFFIXES):
            sha256 = hashlib.sha256(data).hexdigest()
            host, port = self.server.server_address[:2]
            location = f"http://localhost:{port}/cdn/{sha256}"
            headers.update({"X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data)), "Location": location})
            return self.send(302, b"", headers)
        self.send_ranged(data, headers)

    def cdn(self, sha256: str) -> None:
        data = self.state.blob(sha256)
        if data is None:
            return self.send(404, b"no such blob")
        self.send_ranged(data, {"ETag": f'"{sha256}"'})

    def send_ranged(self, data: bytes, headers: dict[str, str]) -> None:
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if not m:
            return self.send(200, data, {**headers, "Content-Type": "application/octet-stream"})
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        part = data[start : end + 1]
        rng = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
        self.send(206, part, {**headers, **rng, "Content-Type": "application/octet-stream"})

    def preupload(self, repo: Repo, rev: str) -> None:
        files = json.loads(self.body())["files"]
        commit = repo.resolve(rev)
        current = repo.commits.get(commit, {}) if commit else {}
        answer = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_oid(current[f["path"]]) if f["path"] in current else None}
            for f in files
        ]  # fmt: skip
        self.send_json({"files": answer})

    def commit(self, repo: Repo, rev: str, query: dict[str, list[str]]) -> None:
        lines = [json.loads(line) for line in self.body().splitlines() if line.strip()]
        header = next(item["value"] for item in lines if item["key"] == "header")
        # huggingface_hub's parent_commit: the commit the files were made from (a PR starts there)
        parent = self.revision(repo, header.get("parentCommit") or rev)
        if parent is None:
            return
        added = {
            item["value"]["path"]: base64.b64decode(item["value"]["content"]) for item in lines if item["key"] == "file"
        }
        if any(item["key"] not in ("header", "file") for item in lines):
            return self.error(400, "BadRequest", "this test Hub takes only regular files")
        files = {**repo.commits[parent], **added}
        endpoint = f"http://{self.headers.get('Host')}"
        if query.get("create_pr", ["0"])[0] == "1":
            num = len(repo.prs) + 1
            sha = repo.commit(files, ref=f"refs/pr/{num}", parent=parent)
            repo.prs.append(PullRequest(num, sha, parent, header["summary"], added))
            pr_url = f"{endpoint}/{repo.repo_id}/discussions/{num}"
        else:
            sha = repo.commit(files, ref=rev, parent=parent)
            pr_url = None
        self.send_json(
            {"commitUrl": f"{endpoint}/{repo.repo_id}/commit/{sha}", "commitOid": sha, "pullRequestUrl": pr_url}
        )


class HubServer(ThreadingHTTPServer):
    daemon_threads = True  # a stalled answer never holds up the test run's exit

    def __init__(self, state: HubState) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet when a client gave up waiting (the stalled answers of the timeout tests)."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def dataset_readme(files: dict[str, bytes]) -> bytes:
    """A dataset card declaring each `<config>/<split>-00000-of-00001.parquet` as its config's split, as
    the Hub's parquet datasets (ai2_arc, mmlu, ...) declare theirs."""
    configs: dict[str, list[str]] = {}
    for path in sorted(files):
        config, name = path.split("/")
        configs.setdefault(config, []).append(name.split("-")[0])
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        lines += [f"  - split: {s}\n    path: {config}/{s}-00000-of-00001.parquet" for s in splits]
    return ("\n".join([*lines, "---", "", "Synthetic test data.", ""])).encode()


def add_dataset(state: HubState, data_root: Path, dataset: str) -> Repo:
    """The offline layout `<dataset>/<config>/<split>.parquet` as a Hub dataset repo with one commit on main."""
    files = {
        f"{p.parent.name}/{p.stem}-00000-of-00001.parquet": p.read_bytes()
        for p in sorted((data_root / dataset).glob("*/*.parquet"))
    }
    repo = state.add("dataset", dataset)
    repo.commit({"README.md": dataset_readme(files), **files}, ref="main")
    return repo
