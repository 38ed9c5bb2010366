"""The result types: a run's scores, model, provenance and per-document records, with their JSON form.

Scores are fractions in [0, 1] everywhere in the code; percentages exist only in the card and tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.errors import RunDirError
from evalsuite.results.fingerprint import Fingerprint

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
SAMPLES_DIR = "samples"


def _check_fraction(value: float | None, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, int | float) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise RunDirError(f"{where} is {value!r}; scores are fractions between 0 and 1")


@dataclass(frozen=True)
class BenchmarkScore:
    """One benchmark's leaderboard score (a fraction) and what it was computed from."""

    benchmark: str
    metric: str
    value: float
    stderr: float | None = None
    n_docs: int | None = None
    num_fewshot: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)  # every per-doc metric's mean
    subscores: Mapping[str, float] = field(default_factory=dict)  # e.g. the 57 MMLU subjects
    fingerprint: Fingerprint | None = None  # what was asked; None for model cards

    def __post_init__(self) -> None:
        _check_fraction(self.value, f"{self.benchmark}.{self.metric}")
        for name, sub in self.subscores.items():
            _check_fraction(sub, f"{self.benchmark}.subscores.{name}")

    @property
    def percent(self) -> float:
        return 100.0 * self.value

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = dict(self.metrics)
        d["subscores"] = dict(self.subscores)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BenchmarkScore:
        return cls(
            benchmark=d["benchmark"],
            metric=d["metric"],
            value=float(d["value"]),
            stderr=None if d.get("stderr") is None else float(d["stderr"]),
            n_docs=d.get("n_docs"),
            num_fewshot=d.get("num_fewshot"),
            metrics={k: float(v) for k, v in (d.get("metrics") or {}).items()},
            subscores={k: float(v) for k, v in (d.get("subscores") or {}).items()},
            fingerprint=Fingerprint.from_dict(d["fingerprint"]) if d.get("fingerprint") else None,
        )


@dataclass(frozen=True)
class ModelInfo:
    """What was evaluated and how it was placed."""

    id: str  # hub id or local path, as the user gave it
    revision: str | None = None  # requested revision
    commit: str | None = None  # resolved commit sha, when the model came from the Hub
    architecture: str | None = None
    dtype: str | None = None
    devices: tuple[str, ...] = ()
    batch_size: int | None = None
    max_length: int | None = None
    num_parameters: int | None = None
    weights_sha256: Mapping[str, str] = field(default_factory=dict)  # local models: weight file -> sha256
    engine: str | None = None  # the class that answered the requests (module.qualname)
    # Weights the checkpoint did not supply (randomly initialised) or supplied unused: only with
    # --allow-missing-weights, otherwise loading fails.
    weights_not_loaded: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelInfo:
        d = dict(d)
        d["devices"] = tuple(d.get("devices") or ())
        d["weights_not_loaded"] = {k: tuple(v) for k, v in (d.get("weights_not_loaded") or {}).items()}
        return cls(**d)


@dataclass(frozen=True)
class Provenance:
    """Everything needed to reproduce a run."""

    evalsuite_version: str = ""
    packages: Mapping[str, str] = field(default_factory=dict)
    seeds: Mapping[str, int] = field(default_factory=dict)
    data_source: str = ""
    data_files: Mapping[str, str] = field(default_factory=dict)  # "<dataset>/<config>/<split>" -> hash or commit
    limit: int | None = None
    smoke: bool = False  # a --limit or demo run: not comparable with the leaderboard
    started_at: str = ""
    finished_at: str = ""
    command: tuple[str, ...] = ()
    allow_missing_weights: bool = False  # scored although weights were missing or unexpected
    resumed_answers: int = 0  # answers reused from an interrupted attempt of the same run
    machine: Mapping[str, Any] = field(default_factory=dict)  # CPU, threads, GPUs, CUDA (pipeline.machine)
    source: str = "run"  # "run" for evalsuite runs, "card" for numbers read from a model card
    # The settings that make the run's command (evalsuite.pipeline.run.RunOptions.command): what
    # `--resume` on a complete run compares, and what reproduces it.
    options: Mapping[str, Any] = field(default_factory=dict)
    # An offline copy's splits that `evalsuite data pull` wrote, unchanged since: where each came from
    # ("<dataset>@<commit>").
    data_origins: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Provenance:
        d = dict(d)
        d["command"] = tuple(d.get("command") or ())
        return cls(**d)


@dataclass(frozen=True)
class RunResult:
    """A whole run (or a published card): the scores per benchmark plus model and provenance."""

    model: ModelInfo
    scores: Mapping[str, BenchmarkScore]
    provenance: Provenance = field(default_factory=Provenance)
    path: Path | None = None  # the run directory, when there is one
    extra: Mapping[str, Any] = field(default_factory=dict)  # optional sections, e.g. "router"
    # The benchmarks the average is taken over: those of the table the run was given that are `in_average`;
    # None (a card, an older run) for the leaderboard's six.
    average_of: tuple[str, ...] | None = None

    def _averaged(self) -> tuple[str, ...]:
        from evalsuite.scoring import in_average

        return in_average() if self.average_of is None else self.average_of

    @property
    def average(self) -> float | None:
        """The leaderboard average (evalsuite.scoring); None unless all its benchmarks are present."""
        from evalsuite.scoring import leaderboard_average

        return leaderboard_average({name: s.value for name, s in self.scores.items()}, self._averaged)

    @property
    def missing(self) -> list[str]:
        """The benchmarks of the average that this result lacks."""
        return [name for name in self._averaged() if name not in self.scores]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": asdict(self.model),
            "benchmarks": {name: s.to_dict() for name, s in self.scores.items()},
            "average": self.average,
            **({} if self.average_of is None else {"average_of": list(self.average_of)}),
            "provenance": asdict(self.provenance),
            **dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: Path | None = None) -> RunResult:
        where = path / RESULTS_FILE if path else RESULTS_FILE
        if not isinstance(d, Mapping):
            raise RunDirError(f"{where}: not a JSON object; it was not written by evalsuite run")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RunDirError(
                f"{where}: schema_version is {version!r}, this evalsuite reads {SCHEMA_VERSION}; "
                "re-run the evaluation with this version"
            )
        try:
            scores = {name: BenchmarkScore.from_dict(s) for name, s in d["benchmarks"].items()}
            known = {"schema_version", "model", "benchmarks", "average", "average_of", "provenance"}
            average_of = d.get("average_of")
            return cls(
                model=ModelInfo.from_dict(d["model"]),
                scores=scores,
                provenance=Provenance.from_dict(d.get("provenance") or {}),
                path=path,
                extra={k: v for k, v in d.items() if k not in known},
                average_of=None if average_of is None else tuple(str(x) for x in average_of),
            )
        except RunDirError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RunDirError(f"{where}: malformed results ({exc!r}); it was not written by evalsuite run") from exc


@dataclass(frozen=True)
class RequestRecord:
    """One request of a document: loglikelihood requests have a continuation, generations a generation."""

    context: str
    continuation: str | None = None
    loglikelihood: float | None = None
    generation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class DocRecord:
    """One evaluated document of samples/<benchmark>.jsonl."""

    doc_id: int
    requests: tuple[RequestRecord, ...]
    metrics: Mapping[str, float]
    subject: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # gold, extracted answer, mc1 requests, ...

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"doc_id": self.doc_id}
        if self.subject is not None:
            d["subject"] = self.subject
        d["requests"] = [r.to_dict() for r in self.requests]
        d["metrics"] = dict(self.metrics)
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DocRecord:
        known = {"doc_id", "subject", "requests", "metrics"}
        return cls(
            doc_id=int(d["doc_id"]),
            subject=d.get("subject"),
            requests=tuple(RequestRecord(**r) for r in d["requests"]),
            metrics={k: float(v) for k, v in d["metrics"].items()},
            extra={k: v for k, v in d.items() if k not in known},
        )

    @property
    def key(self) -> tuple[str | None, int]:
        """Identifies the document within its benchmark (MMLU doc ids repeat across subjects)."""
        return (self.subject, self.doc_id)


@dataclass(frozen=True)
class BenchmarkOutcome:
    """A completed benchmark: its score and its documents."""

    score: BenchmarkScore
    docs: tuple[DocRecord, ...]
