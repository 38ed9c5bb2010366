"""`evalsuite run`: evaluate a model on the v1 benchmarks and write a complete run directory."""

from __future__ import annotations

import contextlib
import platform
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from evalsuite import __version__
from evalsuite.benchmarks.fewshot import DOC_SHUFFLE_SEED
from evalsuite.benchmarks.spec import BenchmarkSpec
from evalsuite.benchmarks.table import BENCHMARKS, select
from evalsuite.data.sources import source_for
from evalsuite.engine.base import BackendOptions, ParallelOptions
from evalsuite.errors import ConfigError, RunDirError
from evalsuite.fsio import atomic_write_json, atomic_write_text, resolve_link
from evalsuite.naming import is_local_path
from evalsuite.paths import public_command
from evalsuite.pipeline.machine import machine_info
from evalsuite.pipeline.rundir import check_output_dir, default_output_dir
from evalsuite.results import RESULTS_FILE, Provenance, RunResult

PACKAGES = ("torch", "transformers", "tokenizers", "lm-eval", "accelerate", "datasets", "huggingface_hub", "numpy")


# RunOptions fields that do not make another command: where the output goes, how it is shown, how
# many data-parallel replicas answer (each answers whole calls as one process would), the resume choice.
NOT_COMMAND = frozenset(
    {"output_dir", "progress", "smoke", "data_parallel", "gpus_per_replica", "cpus_per_replica", "ray_address",
     "resume", "fresh"}
)  # fmt: skip


@dataclass(frozen=True)
class RunOptions:
    model: str
    data_dir: str | None = None
    output_dir: str | None = None
    benchmarks: tuple[str, ...] | None = None  # None: all six
    limit: int | None = None  # first N docs (per config) after the v1 shuffle: a smoke run
    revision: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    backend: str = "fast"  # a name of evalsuite.engine.BACKENDS; "hf" is the bit-exact v1 path
    max_batch_tokens: int | None = None  # fast backend; None: from free memory
    tensor_parallel: int = 1
    batch_size: int | None = None  # hf backend (None: 1, v1's setting)
    trust_remote_code: bool = False
    threads: int | None = None
    router_stats: bool = True
    progress: bool = True
    smoke: bool = False  # set for the embedded demo
    extra_seeds: tuple[tuple[str, int], ...] = ()
    data_parallel: int = 1  # replicas on Ray (evalsuite.engine.parallel); 1: this process
    gpus_per_replica: float = 0.0
    cpus_per_replica: int = 1
    ray_address: str | None = None
    allow_missing_weights: bool = False  # score a checkpoint even when weights are missing or unexpected
    resume: bool = False  # continue the unfinished run of the same command (evalsuite.resume)
    fresh: bool = False  # discard the unfinished run in --output-dir and start over

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit {self.limit} must be a positive number of documents")
        if self.resume and self.fresh:
            raise ConfigError("--resume and --fresh exclude each other: continue the unfinished run, or start over")

    def backend_options(self) -> BackendOptions:
        """The options of the model engine: every RunOptions field BackendOptions also has, so a new
        backend option is declared in both and passed on without a third list."""
        shared = {f.name for f in fields(BackendOptions)} & {f.name for f in fields(self)}
        return BackendOptions(**{name: getattr(self, name) for name in shared})

    def command(self, table: Sequence[BenchmarkSpec] = BENCHMARKS) -> dict[str, Any]:
        """What makes two invocations the same command: where the output goes, how it is shown and how many
        data-parallel replicas answer do not (each replica answers whole calls as one process would)."""

        def where(p: str | None) -> str | None:
            return str(Path(p).expanduser().resolve()) if p else None

        command = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in NOT_COMMAND}
        command.update(
            model=where(self.model) if is_local_path(self.model) else self.model,
            data_dir=where(self.data_dir),
            benchmarks=[spec.name for spec in select(self.benchmarks, table)],
            extra_seeds=[list(s) for s in self.extra_seeds],
        )
        return command

    def record(self, table: Sequence[BenchmarkSpec] = BENCHMARKS) -> dict[str, Any]:
        """The command as results.json records it: paths under the home directory as `~/...`."""
        from evalsuite.paths import home_path

        command = self.command(table)
        for key in ("model", "data_dir"):  # a Hub id is not an absolute path: kept as it is
            if command[key] is not None:
                command[key] = home_path(command[key])
        return command

    def parallel(self) -> ParallelOptions:
        return ParallelOptions(
            replicas=self.data_parallel,
            gpus_per_replica=self.gpus_per_replica,
            cpus_per_replica=self.cpus_per_replica,
            ray_address=self.ray_address,
        )


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "evalsuite": __version__}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def _quiet_library_bars() -> None:
    """--no-progress: the libraries' own bars (dataset and model downloads, loading weights) go too."""
    import datasets
    import transformers
    from huggingface_hub.utils import disable_progress_bars

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    disable_progress_bars()


def _already_complete(run_dir: Path, opts: RunOptions, table: Sequence[BenchmarkSpec]) -> Path:
    """`--resume` on a complete run: nothing to do when it is this command's (a requeued job ends well);
    a RunDirError naming what differs when it is another's."""
    from evalsuite.paths import display_path
    from evalsuite.results import load_run
    from evalsuite.resume.claim import command_difference

    done = load_run(run_dir)
    if done.provenance.options:  # the whole command, as the run recorded it
        difference = command_difference(done.provenance.options, opts.record(table))
    else:  # a run written before commands were recorded: what its results say of the command
        model = display_path(opts.model) if is_local_path(opts.model) else opts.model
        recorded = {
            "model": (done.model.id, model),
            "revision": (done.model.revision, opts.revision),
            "limit": (done.provenance.limit, opts.limit),
            "benchmarks": (sorted(done.scores), sorted(spec.name for spec in select(opts.benchmarks, table))),
            "backend": ((done.extra.get("engine") or {}).get("backend"), opts.backend),
        }
        difference = next((f"{key} was {was}, now {now}" for key, (was, now) in recorded.items() if was != now), None)
    if difference:
        raise RunDirError(
            f"--output-dir {run_dir}: holds a complete run of another command ({difference}); choose another "
            "directory, or run the same command again"
        )
    print(f"note: {run_dir} is a complete run of this command; nothing to resume", file=sys.stderr)
    return run_dir


def complete_run(opts: RunOptions, table: Sequence[BenchmarkSpec] = BENCHMARKS) -> Path | None:
    """With `--resume` and an `--output-dir` that holds a complete run: that directory, when it is a run of
    this command (a requeued job: nothing to do), a one-line error when it is of another; else None."""
    requested = Path(opts.output_dir) if opts.output_dir else None
    if requested is None or not opts.resume or not (requested / RESULTS_FILE).is_file():
        return None
    return _already_complete(requested, opts, table)


def run(opts: RunOptions, table: Sequence[BenchmarkSpec] = BENCHMARKS) -> Path:
    """Evaluate and write the run directory; returns its path. Bad input fails before model time.
    `table`: the benchmarks to choose from (default the six of the leaderboard).

    The output directory is claimed first; every answer is kept in its staging directory as it comes,
    so an interrupted run continues with `--resume` (evalsuite.resume)."""
    from evalsuite.card.hub_eval_results import run_files, write_files
    from evalsuite.card.update import render_metrics_table, render_model_index
    from evalsuite.engine import backend_module, load_backend
    from evalsuite.engine.accounting import Accountant
    from evalsuite.engine.model_files import resolve
    from evalsuite.engine.truncation import cut_note, per_request_warnings_silenced
    from evalsuite.pipeline.evaluate import evaluate, no_observer, prepare_all
    from evalsuite.resume.fingerprint import run_fingerprint
    from evalsuite.resume.session import RunSession

    started = datetime.now(UTC)
    specs = select(opts.benchmarks, table)
    backend_opts = opts.backend_options()
    backend_module(backend_opts.backend)  # an unknown backend fails before anything is read
    parallel = opts.parallel()
    complete = complete_run(opts, table)
    if complete is not None:
        return complete
    requested = Path(opts.output_dir) if opts.output_dir else None
    if requested is not None:
        check_output_dir(requested)
        requested = resolve_link(requested)  # a link to an empty directory: the run goes there, the link stays
    default = default_output_dir(opts.model, unique=False)
    with RunSession(requested, default, opts.command(table), resume=opts.resume, fresh=opts.fresh) as session:
        if not opts.progress:
            _quiet_library_bars()
        source = source_for(opts.data_dir)
        prepared = prepare_all(specs, source, opts.limit)
        if opts.progress and sys.stderr.isatty():  # hashing a large model's files and loading it take minutes: say so
            print(f"loading {opts.model} ({opts.backend} backend)", file=sys.stderr)
        versions = package_versions()
        # once: the fingerprint and the loaded weights are of the same files
        files = resolve(backend_opts, opts.progress)
        fingerprint = run_fingerprint(backend_opts, files, source, versions)
        session.check_fingerprint(fingerprint, tuple(fingerprint.fields))  # before the model loads

        # A budget the backend chose for itself in an earlier attempt is kept: it decides the batches (bits).
        chosen = session.budget() if backend_opts.max_batch_tokens is None else None
        load_opts = replace(backend_opts, max_batch_tokens=chosen) if chosen else backend_opts
        loaded = load_backend(load_opts, files, parallel)
        try:
            info = loaded.info
            fingerprint = fingerprint.with_fields(loaded={"dtype": info.dtype, "devices": list(info.devices)})
            session.check_fingerprint(fingerprint)
            session.keep_budget(loaded.settings.get("max_batch_tokens"))
            backend = session.wrap(loaded, fingerprint)
            done = session.completed(specs)
            if session.reused:
                finished = f"; complete: {', '.join(done)}" if done else ""
                print(
                    f"resuming {session.final}: {session.reused} requests already answered{finished}", file=sys.stderr
                )
            recorder = backend.router_counter() if opts.router_stats else None
            route: Any = recorder.track if recorder else no_observer
            # What this attempt asks the model: a benchmark interrupted midway counts its remaining requests.
            todo = [spec for spec in specs if spec.name not in done]
            requests, earlier = {}, {}
            for spec in todo:
                flat = [req for item in prepared[spec.name] for req in item.requests]
                earlier[spec.name] = frozenset(backend.answered(flat))
                requests[spec.name] = [req for i, req in enumerate(flat) if i not in earlier[spec.name]]
            accountant = Accountant(backend.meter(), files.tokenizer, files.max_length, requests)

            @contextlib.contextmanager
            def observer(name: str) -> Iterator[None]:
                with accountant.track(name), route(name):
                    yield

            def benchmark_done(name: str, outcome: Any, reused: int) -> None:
                session.save_benchmark(recorder, name, outcome, reused)
                cost = accountant.done[name]  # after the benchmark's bar has closed: a line of its own
                note = cut_note(name, cost.truncated_requests, cost.requests, files.max_length)
                if note:
                    print(note, file=sys.stderr)

            with per_request_warnings_silenced():  # one note per benchmark instead
                fresh = evaluate(
                    backend,
                    todo,
                    prepared,
                    answered=earlier,
                    progress=opts.progress,
                    observer=observer,
                    on_done=benchmark_done,
                )
            settings = {"backend": opts.backend, **backend.settings, "benchmarks": accountant.to_dict()}
        finally:
            loaded.close()  # with the hooks of its meter and router counter
        outcomes = {spec.name: {**done, **fresh}[spec.name] for spec in specs}

        provenance = Provenance(
            evalsuite_version=__version__,
            packages=versions,
            seeds={"doc_shuffle_and_fewshot": DOC_SHUFFLE_SEED, **dict(opts.extra_seeds)},
            data_source=source.describe(),
            data_files=source.fingerprints(),
            limit=opts.limit,
            smoke=opts.smoke or opts.limit is not None,
            started_at=started.isoformat(timespec="seconds"),
            finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
            command=public_command(sys.argv),
            allow_missing_weights=opts.allow_missing_weights,
            resumed_answers=session.reused,
            machine=machine_info(),
            options=opts.record(table),
            data_origins=source.origins(),
        )
        extra: dict[str, Any] = {"engine": settings}
        router_summary = session.write_router([spec.name for spec in specs]) if recorder is not None else None
        if router_summary is not None:
            extra["router"] = router_summary
        stage = session.stage
        result = RunResult(
            model=info,
            scores={name: o.score for name, o in outcomes.items()},
            provenance=provenance,
            extra=extra,
            average_of=_average_of(table),
        )
        atomic_write_text(stage / "model-index.yaml", render_model_index(result))
        write_files(stage, run_files(replace(result, path=session.final), RESULTS_FILE, table))
        atomic_write_text(stage / "metrics.md", render_metrics_table(result))
        atomic_write_json(stage / RESULTS_FILE, result.to_dict())  # last: marks the run complete
        session.finish()
    return session.final


def _average_of(table: Sequence[BenchmarkSpec]) -> tuple[str, ...] | None:
    """The benchmarks of the table this run was given that its average is taken over; None (not recorded)
    when they are the leaderboard's six, as every earlier run's were."""
    from evalsuite.scoring import in_average

    names = tuple(spec.name for spec in table if spec.in_average)
    return None if names == in_average() else names
