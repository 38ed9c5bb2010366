"""A model's files as one run uses them, resolved once: the directory, the Hub commit, the digests, the
config, the tokenizer and the max length.

`resolve(options)` is called by the pipeline before anything else about the model: its `identity()`
keys the run's fingerprint (evalsuite.resume.fingerprint) and the same value is handed to the backend's
loader, so the answers stored under a fingerprint were computed from exactly the files it names (a
branch that moves during the run moves neither). A data-parallel replica on another machine gets the
same value and finds the files there with `here()`: the same commit, never the branch again.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite.cache import cache_root
from evalsuite.engine.truncation import silence_too_long_warning
from evalsuite.engine.weights import WEIGHT_SUFFIXES, model_files_sha256, paths_sha256
from evalsuite.errors import ConfigError, ModelError, one_line
from evalsuite.fsio import atomic_write_json
from evalsuite.hub import repos
from evalsuite.hub.errors import hub_error, timeout
from evalsuite.naming import is_local_path

if TYPE_CHECKING:
    from evalsuite.engine.base import BackendOptions
    from evalsuite.hub.repos import RepoSnapshot

DEFAULT_MAX_LENGTH = 2048  # v1's fallback when neither config nor tokenizer gives a length
_HUGE = 10**12  # tokenizers report an "infinite" model_max_length with a huge sentinel

# The files transformers loads of a Hub model: safetensors when the repo has them (not also the .bin copies,
# consolidated.* or original/ checkpoints, which can be tens of GB for a Mixtral).
_LOADED = ("*.json", "*.py", "*.model", "*.tiktoken", "*.txt")
_NOT_LOADED = ["original/*", "consolidated*"]


@dataclass(frozen=True)
class ModelFiles:
    """One model, resolved: what every backend loads and what the run's fingerprint and record name."""

    model: str  # as the user gave it: a Hub id or a local directory
    directory: Path  # where the files are on this machine
    commit: str | None  # the Hub commit the revision resolved to; None for a local directory
    weights_sha256: Mapping[str, str]  # weight file name -> sha256
    files_sha256: Mapping[str, str] | None  # a local model's files that decide answers (None: the commit says it)
    config: Any  # transformers' config of the model
    tokenizer: Any  # the model's tokenizer, as transformers loads it
    max_length: int  # the option, else v1's rule (config, then tokenizer, then 2048)

    def identity(self) -> dict[str, Any]:
        """What the fingerprint records of the model: the Hub commit, or a local model's file digests."""
        return {"commit": self.commit} if self.commit else dict(self.files_sha256 or {})

    def here(self) -> ModelFiles:
        """The same files on this machine (a data-parallel replica's): a Hub model at the same commit is
        found in (or downloaded to) this machine's cache; a local directory must exist here too."""
        if self.directory.is_dir() or self.commit is None:
            return self
        path, _ = hub_model_dir(self.model, self.commit)
        return replace(self, directory=path)


def resolve(options: BackendOptions, progress: bool = False) -> ModelFiles:
    """The model `options` name, resolved once for the run (each failure one line naming the fix).
    `progress`: a bar on stderr while files are hashed (not when their digests are known)."""
    path, snapshot = _locate(options)
    config, tokenizer = load_config_and_tokenizer(path, options.trust_remote_code)
    if snapshot is None:
        files = model_files_sha256(path, progress)
        weights = {name: digest for name, digest in files.items() if name.endswith(WEIGHT_SUFFIXES)}
        commit, all_files = None, files
    else:
        names = sorted(p.name for p in path.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
        # The Hub declares the digests of its LFS files: a large checkpoint is not read again to hash it
        # (offline, the Hub is not asked: the files are hashed, once).
        undeclared = paths_sha256([path / name for name in names if not snapshot.lfs_sha256.get(name)], progress)
        weights = {name: snapshot.lfs_sha256.get(name) or undeclared[path / name] for name in names}
        commit, all_files = snapshot.commit, None
    return ModelFiles(
        model=options.model,
        directory=path,
        commit=commit,
        weights_sha256=weights,
        files_sha256=all_files,
        config=config,
        tokenizer=tokenizer,
        max_length=options.max_length or v1_max_length(config, tokenizer),
    )


def _locate(options: BackendOptions) -> tuple[Path, RepoSnapshot | None]:
    """A local directory holding the model, and the Hub snapshot it came from (None for local models)."""
    if is_local_path(options.model):
        local = Path(options.model).expanduser()
        if not local.is_dir():
            raise ModelError(
                f"model path {options.model}: no such directory; give a Hub id (owner/name) or a model dir"
            )
        if not (local / "config.json").is_file():
            raise ModelError(
                f"model dir {options.model}: holds no config.json; point at a transformers model directory"
            )
        if options.revision:
            raise ConfigError(
                f"--revision {options.revision} applies to Hub models; {options.model} is a local directory "
                "(check out the revision there, or drop --revision)"
            )
        return local, None
    return hub_model_dir(options.model, options.revision)


@functools.lru_cache(maxsize=8)
def hub_model_dir(model: str, revision: str | None) -> tuple[Path, RepoSnapshot]:
    """The Hub model at the commit `revision` names, downloaded (or found in the cache). With HF_HUB_OFFLINE
    set, the snapshot a download left in the cache, without asking the Hub."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import is_offline_mode

    if is_offline_mode():
        return _cached_model_dir(model, revision)
    offline = "or pass a local model directory"
    snapshot = repos.snapshot(model, revision, fix=offline, lfs=True)  # the weights' digests come with it
    safetensors = any(f.endswith(".safetensors") for f in snapshot.files)
    weights = ["*.safetensors", "*.safetensors.index.json"] if safetensors else ["*.bin", "*.bin.index.json"]
    try:
        path = snapshot_download(
            model,
            revision=snapshot.commit,  # the commit resolved above, not the branch again
            allow_patterns=[*_LOADED, *weights],
            ignore_patterns=_NOT_LOADED,
            etag_timeout=timeout(),
        )
    except Exception as exc:
        raise hub_error(exc, model, revision=revision, fix=offline) from exc
    _remember(model, revision, snapshot.commit)
    return Path(path), snapshot


# The commit each Hub revision resolved to when it was downloaded (the download asks for the commit, so
# the Hugging Face cache does not map the branch or tag to it): what an offline run of the revision uses.
REVISIONS_FILE = "hub-revisions.json"


def _revision_key(model: str, revision: str | None) -> str:
    return f"{model}@{revision or ''}"


def _revisions() -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        known = json.loads((cache_root() / REVISIONS_FILE).read_text(encoding="utf-8"))
        return known if isinstance(known, dict) else {}
    return {}


def _remember(model: str, revision: str | None, commit: str) -> None:
    known = _revisions()
    if known.get(_revision_key(model, revision)) != commit:
        with contextlib.suppress(OSError):
            cache_root().mkdir(parents=True, exist_ok=True)
            atomic_write_json(cache_root() / REVISIONS_FILE, {**known, _revision_key(model, revision): commit})


def _remembered(model: str, revision: str | None) -> str | None:
    commit = _revisions().get(_revision_key(model, revision))
    return commit if isinstance(commit, str) else None


def _cached_model_dir(model: str, revision: str | None) -> tuple[Path, RepoSnapshot]:
    """The cached snapshot of `revision` (HF_HUB_OFFLINE): the commit it resolved to when evalsuite downloaded
    it, else what the Hugging Face cache maps it to; the snapshot's folder is named by its commit. No digests
    come from the Hub: the weights are hashed here (once; evalsuite.engine.weights keeps the digests)."""
    from huggingface_hub import snapshot_download

    try:
        commit = _remembered(model, revision) or revision
        path = Path(snapshot_download(model, revision=commit, local_files_only=True))
    except Exception as exc:
        at = f" at {revision!r}" if revision else ""
        raise ModelError(
            f"model {model}{at} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: run once online to "
            f"download it (or unset HF_HUB_OFFLINE), or pass a local model directory ({type(exc).__name__})"
        ) from exc
    files = tuple(sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()))
    return path, repos.RepoSnapshot(repo_id=model, revision=revision, commit=path.name, files=files)


def v1_max_length(config: Any, tokenizer: Any) -> int:
    """v1 (and lm-eval): the config's n_positions / max_position_embeddings / n_ctx, then the tokenizer."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if value:
            return int(value)
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < _HUGE:
        return int(tok_max)
    return DEFAULT_MAX_LENGTH


def load_config_and_tokenizer(path: Path, trust_remote_code: bool) -> tuple[Any, Any]:
    """The model directory's config and tokenizer, each failure one line naming what to fix."""
    import transformers

    config = _load(
        transformers.AutoConfig, path, trust_remote_code, "model", "config.json could not be read", "fix or replace it"
    )
    tokenizer = _load(
        transformers.AutoTokenizer, path, trust_remote_code, "tokenizer", "the tokenizer could not be loaded",
        "the directory needs the model's tokenizer files (e.g. tokenizer.json and tokenizer_config.json)",
    )  # fmt: skip
    silence_too_long_warning(tokenizer)  # every input is cut to the max length before the model sees it
    return config, tokenizer


def _load(auto: Any, path: Path, trusted: bool, what: str, failure: str, fix: str) -> Any:
    """`auto.from_pretrained(path)`, a failure one line: the flag custom code needs, else `failure` and `fix`."""
    try:
        return auto.from_pretrained(path, trust_remote_code=trusted)
    except Exception as exc:
        refuse_custom_code(exc, path, what, trusted)
        raise ModelError(f"model dir {path}: {failure} ({type(exc).__name__}: {one_line(exc)}); {fix}") from exc


def refuse_custom_code(exc: Exception, path: Path, what: str, trusted: bool) -> None:
    """transformers refuses custom code naming its Python keyword; say which flag allows it."""
    if not trusted and "trust_remote_code" in str(exc):
        raise ModelError(
            f"model dir {path}: the {what} needs its own Python code from the model files (auto_map); "
            "pass --trust-remote-code if you trust that code"
        ) from exc
