"""Data parallel on Ray: N replicas of one backend, each answering whole calls of the pipeline.

Each replica is a Ray actor that loads the model through `load_backend` (on `gpus_per_replica` GPUs,
or on CPU threads) and answers the pipeline's calls exactly as a single process would: a call (a part
of REQUESTS_PER_CALL requests) is never split, so every request is batched with the same neighbours
and the run directory is the one a single process writes. Call number i goes to replica i mod N, a
deterministic shard; when a replica dies, the call it held is answered by the next live one and the
run says so. Router statistics are counted in the replicas, per call, and summed here.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lm_eval.api.model import LM

from evalsuite.engine.base import BackendOptions, ParallelOptions
from evalsuite.errors import ConfigError, EvalsuiteError, ModelError, NonFiniteAnswer, one_line
from evalsuite.results import ModelInfo

NAMESPACE = "evalsuite"
ACTOR_PREFIX = "evalsuite-replica"


class Replica:
    """One model replica (the body of a Ray actor): loads the backend, answers calls, counts routing."""

    def __init__(self, options: BackendOptions, router_stats: bool) -> None:
        from evalsuite.engine import load_backend
        from evalsuite.moe.recorder import recorder_for

        self.backend = load_backend(options)
        self.recorder = recorder_for(self.backend.module) if router_stats else None
        self.calls = 0

    def describe(self) -> tuple[ModelInfo, bool, dict[str, int] | None]:
        """What was loaded, whether routing is counted, and the calls the backend wants (requests_per_call)."""
        return self.backend.info, self.recorder is not None, getattr(self.backend.lm, "requests_per_call", None)

    def answered(self) -> int:
        """How many calls this replica has answered (a progress probe; runs beside `answer`)."""
        return self.calls

    def answer(self, benchmark: str | None, request_type: str, arguments: Sequence[Any]) -> tuple[list[Any], Any]:
        """The answers to one call, and the router counts of that call (None without statistics)."""
        from lm_eval.api.instance import Instance

        instances = [Instance(request_type=request_type, doc={}, arguments=a, idx=0) for a in arguments]
        method = getattr(self.backend.lm, request_type)
        counts = None
        if self.recorder is not None and benchmark is not None:
            with self.recorder.track(benchmark):
                out = method(instances)
            counts = self.recorder.take()
        else:
            out = method(instances)
        self.calls += 1
        return [tuple(o) if isinstance(o, tuple | list) else o for o in out], counts


@dataclass
class MergedRouterCounts:
    """Router statistics summed over the replicas' calls; used by the pipeline like a RouterRecorder."""

    benchmark: str | None = None
    frames: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def track(self, benchmark: str) -> Iterator[None]:
        self.benchmark = benchmark
        try:
            yield
        finally:
            self.benchmark = None

    def add(self, frame: Any) -> None:
        with self.lock:
            self.frames.append(frame)

    def frame(self) -> Any:
        import pandas as pd

        from evalsuite.moe.stats import COLUMNS

        if not self.frames:
            return pd.DataFrame(columns=list(COLUMNS))
        keys = ["benchmark", "layer", "expert"]
        # Integer counts add up exactly whatever the order; rows come in benchmark order, layers and
        # experts ascending, as one recorder writes them.
        merged = pd.concat(self.frames, ignore_index=True).groupby(keys, sort=False, as_index=False).sum()
        order = {b: i for i, b in enumerate(dict.fromkeys(merged["benchmark"]))}
        merged = merged.sort_values(
            ["benchmark", "layer", "expert"], key=lambda col: col.map(order) if col.name == "benchmark" else col
        )
        return merged.reset_index(drop=True)[list(COLUMNS)]

    def write(self, run_dir: Any) -> dict[str, Any]:
        from evalsuite.moe.recorder import write_frame

        return write_frame(self.frame(), run_dir)

    def close(self) -> None:
        self.frames = []


class DataParallelLM(LM):  # type: ignore[misc]
    """An lm-eval `LM` whose calls go to Ray replicas; `parallel_calls` tells the pipeline how many
    calls to keep in flight."""

    def __init__(
        self, actors: Sequence[Any], counts: MergedRouterCounts | None, requests_per_call: dict[str, int] | None
    ) -> None:
        super().__init__()
        self.actors = list(actors)
        self.requests_per_call = requests_per_call  # the replicas' backend's, so calls equal one process's
        self.alive = [True] * len(self.actors)
        self.locks = [threading.Lock() for _ in self.actors]
        self.counts = counts
        self.parallel_calls = len(self.actors)
        self.lost: list[int] = []
        self._sequence = itertools.count()
        self._state = threading.Lock()

    def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = True) -> list[Any]:
        return self._call("loglikelihood", requests)

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = True) -> list[Any]:
        return self._call("generate_until", requests)

    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = True) -> list[Any]:
        raise NotImplementedError("v1 has no rolling log-likelihood benchmark")

    def _call(self, request_type: str, requests: Sequence[Any]) -> list[Any]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        with self._state:
            first = next(self._sequence) % len(self.actors)
        benchmark = self.counts.benchmark if self.counts is not None else None
        arguments = [r.args for r in requests]
        for step in range(len(self.actors)):
            k = (first + step) % len(self.actors)
            if not self.alive[k]:
                continue
            with self.locks[k]:
                if not self.alive[k]:
                    continue
                try:
                    answers, counts = ray.get(self.actors[k].answer.remote(benchmark, request_type, arguments))
                except RayActorError as exc:
                    self._lose(k, len(requests), exc)
                    continue
                except RayTaskError as exc:  # a non-finite answer stops the run as in one process
                    if isinstance(exc.cause, NonFiniteAnswer):
                        raise exc.cause from None
                    raise
            if counts is not None and self.counts is not None:
                self.counts.add(counts)
            return answers
        raise ModelError(
            f"data parallel: all {len(self.actors)} replicas died (the last error is in the Ray logs); "
            "check memory per replica (--gpus-per-replica, --cpus-per-replica) and rerun"
        )

    def _lose(self, k: int, pending: int, exc: BaseException) -> None:
        with self._state:
            self.alive[k] = False
            self.lost.append(k)
            left = sum(self.alive)
        from tqdm.auto import tqdm

        tqdm.write(
            f"warning: data parallel: replica {k} died ({type(exc).__name__}); its {pending} unanswered requests "
            f"go to the {left} live replica(s)",
            file=sys.stderr,
        )


@dataclass
class ParallelBackend:
    """N replicas behind one LM (a Backend, see evalsuite.engine.base)."""

    lm: DataParallelLM
    info: ModelInfo
    options: ParallelOptions
    router_counts: MergedRouterCounts | None
    started_ray: bool
    module: Any = None  # the models live in the replicas

    @property
    def settings(self) -> dict[str, Any]:
        return {"data_parallel": {**self.options.record(), "replicas_lost": list(self.lm.lost)}}

    def close(self) -> None:
        import ray

        for actor in self.lm.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        if self.started_ray:
            ray.shutdown()


def _start_ray(parallel: ParallelOptions) -> bool:
    """Join the cluster (or start a local instance); True when this call started Ray."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--data-parallel needs Ray: install it with `pip install 'evalsuite[ray]'` (make install does)"
        ) from None
    if ray.is_initialized():
        return False
    local = parallel.ray_address in (None, "local")
    # Ray's own notes (that it started, how it authenticates) are not the run's business: errors only.
    kwargs: dict[str, Any] = {
        "namespace": NAMESPACE,
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
    }
    if local:
        # Enough CPU slots for every replica even on a small machine: a replica is mostly one process.
        kwargs["num_cpus"] = max(os.cpu_count() or 1, parallel.replicas * parallel.cpus_per_replica)
    else:
        kwargs["address"] = parallel.ray_address
    try:
        ray.init(**kwargs)
    except Exception as exc:
        where = "a local Ray instance" if local else f"the Ray cluster at {parallel.ray_address}"
        raise ConfigError(f"--data-parallel: could not start {where} ({one_line(exc)}); check --ray-address") from exc
    return True


def load(options: BackendOptions, parallel: ParallelOptions, *, router_stats: bool) -> ParallelBackend:
    """Start `parallel.replicas` replicas of the backend `options` names and wait until all are loaded."""
    started = _start_ray(parallel)
    import ray

    if parallel.gpus_per_replica == 0 and options.device.startswith("cuda"):
        raise ConfigError(f"--device {options.device} with --data-parallel needs --gpus-per-replica (e.g. 1)")
    device = options.device if parallel.gpus_per_replica else "cpu"
    threads = options.threads or (parallel.cpus_per_replica if not parallel.gpus_per_replica else None)
    replica_options = replace(options, device=device, threads=threads)
    actor_class: Any = ray.remote(Replica)  # Ray's typing does not know the actor's methods
    tag = f"{os.getpid()}-{id(options):x}"
    actors: list[Any] = [
        actor_class.options(
            name=f"{ACTOR_PREFIX}-{k}-{tag}",
            num_cpus=parallel.cpus_per_replica,
            num_gpus=parallel.gpus_per_replica,
            max_concurrency=2,  # `answered` may be asked while `answer` runs; calls come one at a time
        ).remote(replica_options, router_stats)
        for k in range(parallel.replicas)
    ]
    try:
        described = ray.get([a.describe.remote() for a in actors])
    except Exception as exc:
        for a in actors:
            with contextlib.suppress(Exception):
                ray.kill(a)
        if started:
            ray.shutdown()
        cause = getattr(exc, "cause", None) or exc
        if isinstance(cause, EvalsuiteError):  # bad input, said in one line by the replica
            raise cause from None
        raise ModelError(f"data parallel: a replica failed to load the model ({one_line(cause)})") from None
    infos = [info for info, _, _ in described]
    devices = tuple(sorted({d for info in infos for d in info.devices}))
    info = replace(infos[0], devices=devices)
    counts = MergedRouterCounts() if any(has for _, has, _ in described) else None
    return ParallelBackend(DataParallelLM(actors, counts, described[0][2]), info, parallel, counts, started)


__all__ = ["DataParallelLM", "ParallelBackend", "ParallelOptions", "Replica", "load"]
