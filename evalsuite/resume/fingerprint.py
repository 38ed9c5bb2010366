"""What decides a run's answers: model files (or Hub commit), numerics settings, versions, data files.

Two runs with equal fingerprints give the same answer to the same request, so a resumed run may reuse
the stored answers only under an equal fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalsuite.data.sources import DataSource
    from evalsuite.engine.base import BackendOptions
    from evalsuite.engine.model_files import ModelFiles

# Packages whose versions change numerics or prompts.
NUMERIC_PACKAGES = ("torch", "transformers", "tokenizers", "lm-eval", "accelerate")
# Backend options that do not decide an answer: which model (the "model" field holds its files' hashes or
# its Hub commit), and permissions that decide only whether a model loads at all.
NOT_NUMERIC = ("model", "revision", "trust_remote_code", "allow_missing_weights")


@dataclass(frozen=True)
class RunFingerprint:
    """Named fields; `digest` keys the stored answers, `differs_from` names the first field that changed."""

    fields: Mapping[str, Any] = field(default_factory=dict)

    def digest(self) -> str:
        text = json.dumps(dict(self.fields), sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def with_fields(self, **more: Any) -> RunFingerprint:
        return RunFingerprint({**self.fields, **more})

    def differs_from(self, old: RunFingerprint, keys: tuple[str, ...] | None = None) -> str | None:
        """A short description of the first difference (in `keys`, default all), or None when equal."""
        for key in keys if keys is not None else tuple(sorted({*self.fields, *old.fields})):
            before, now = _plain(old.fields.get(key)), _plain(self.fields.get(key))
            if before == now:
                continue
            if isinstance(before, dict) and isinstance(now, dict):  # name the entry, e.g. one weight file
                for sub in sorted({*before, *now}):
                    if before.get(sub) != now.get(sub):
                        return f"{key} {sub} was {_short(before.get(sub))}, now {_short(now.get(sub))}"
            return f"{key} was {_short(before)}, now {_short(now)}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dict(self.fields), sort_keys=True, default=str))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunFingerprint:
        return cls(dict(d))


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _short(value: Any) -> str:
    """A value as a user reads it: unset, on/off, a,b,c, none."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list | tuple):
        return ",".join(_short(v) for v in value) if value else "none"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def run_fingerprint(
    options: BackendOptions, files: ModelFiles, source: DataSource, versions: Mapping[str, str]
) -> RunFingerprint:
    """What decides a run's answers, known before the model loads (the loaded dtype and devices are
    added after loading). The backend's settings go in generally: its name and every option that can
    change a number (dtype, device, batch size, max length, threads, tensor parallel, ...). Data-parallel
    replicas are left out: each answers whole calls as one process would, so their number may change
    between attempts (results.json records it under `engine`). `files`: the model as the run resolved it
    (its Hub commit, or a local model's file digests)."""
    settings = {k: v for k, v in dataclasses.asdict(options).items() if k not in NOT_NUMERIC}
    return RunFingerprint(
        {
            "evalsuite": versions.get("evalsuite"),
            "packages": {name: versions.get(name) for name in NUMERIC_PACKAGES},
            "model": files.identity(),
            "backend": settings,
            "data": source.fingerprints(),
        }
    )
