"""Data parallel on Ray: N replicas of one backend, each answering whole calls of the pipeline.

Each replica is a Ray actor that loads the model through `load_backend` (on `gpus_per_replica` GPUs,
or on CPU threads) and answers the pipeline's calls exactly as a single process would: a call (a part
of REQUESTS_PER_CALL requests) is never split, so every request is batched with the same neighbours
and the run directory is the one a single process writes. Call number i goes to replica i mod N, a
deterministic shard; when a replica is lost (its process or its node dies, while it loads the model
or later), the call it held is answered by the next live one and the run says so in one line; the run
fails only when no replica is left. Router statistics are counted in the replicas, per call, and summed
here.

Without `--ray-address` the replicas run in a private local Ray instance (`address="local"`), never in a
cluster this machine happens to know of; with one, the address is checked to answer before Ray is asked
to join it (Ray itself retries for minutes). Ray's own notes (error messages it forwards to the driver,
its SIGTERM handler) are kept out of the run: the run's SIGTERM/SIGINT handling stays evalsuite's.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM

from evalsuite.engine.base import Backend, BackendOptions, Calls, ParallelOptions, RouterCounter
from evalsuite.engine.model_files import ModelFiles
from evalsuite.errors import ConfigError, EvalsuiteError, ModelError, NonFiniteAnswer, one_line
from evalsuite.results import ModelInfo

NAMESPACE = "evalsuite"
ACTOR_PREFIX = "evalsuite-replica"
# How long a --ray-address may take to accept a connection before the run says it cannot be reached.
CONNECT_SECONDS = 10.0
RAY_DEFAULT_PORT = 6379


@dataclass(frozen=True)
class Described:
    """A loaded replica: its model, and how its backend wants to be called."""

    info: ModelInfo
    calls: Calls
    max_batch_tokens: int | None  # the budget it chose for itself (the fast backend), before any common one


class Replica:
    """One model replica (the body of a Ray actor): loads the backend, answers calls, counts routing."""

    def __init__(self, module: str, options: BackendOptions, files: ModelFiles) -> None:
        from evalsuite.engine.registry import load_module_backend
        from evalsuite.engine.truncation import silence_per_request_warnings

        # The process is the replica's: lm-eval's per-request truncation warnings stay off for its lifetime
        # (the driver notes the count per benchmark).
        silence_per_request_warnings()
        self.backend = load_module_backend(module, options, files.here())
        self.recorder: RouterCounter | None = None

    def describe(self) -> Described:
        """What was loaded and how its backend wants to be called."""
        return Described(self.backend.info, self.backend.calls, self.backend.settings.get("max_batch_tokens"))

    def use_budget(self, max_batch_tokens: int) -> None:
        """Batch by this budget, the one every replica uses (evalsuite.engine.fast.budget)."""
        self.backend.lm.use_budget(max_batch_tokens)

    def count_routing(self) -> bool:
        """Count MoE routing from now on; False when the backend has no router counter (a dense model)."""
        if self.recorder is None:
            self.recorder = self.backend.router_counter()
        return self.recorder is not None

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

    def take(self) -> Any:
        frame = self.frame()
        self.frames = []
        return frame

    def write(self, run_dir: str | Path) -> dict[str, Any]:
        from evalsuite.moe.recorder import write_frame

        return write_frame(self.frame(), run_dir)

    def close(self) -> None:
        self.frames = []


class DataParallelLM(LM):
    """An lm-eval `LM` whose calls go to Ray replicas, each call whole to one replica."""

    def __init__(self, actors: Sequence[Any]) -> None:
        super().__init__()
        self.actors = list(actors)
        self.alive = [True] * len(self.actors)
        self.locks = [threading.Lock() for _ in self.actors]
        self.counts: MergedRouterCounts | None = None  # set when the run asks for router statistics
        self.lost: list[int] = []
        self.closed = False
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
        from ray.exceptions import RayTaskError

        lost = _lost_errors()

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
                except lost as exc:
                    if self.closed:  # the run is stopping: the replicas are being shut down
                        raise
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


def _lost_errors() -> tuple[type[BaseException], ...]:
    """What `ray.get` raises when a replica's process or node is gone (not an error of its own code)."""
    from ray.exceptions import NodeDiedError, RayActorError, WorkerCrashedError

    return RayActorError, NodeDiedError, WorkerCrashedError


@dataclass
class ParallelBackend(Backend):
    """N replicas behind one LM: called like the replicas' backend, with one call in flight per replica."""

    lm: DataParallelLM
    info: ModelInfo
    options: ParallelOptions
    started_ray: bool
    calls: Calls = Calls()  # the replicas' backend's, with one call in flight per replica
    budgets: dict[int, int] = field(default_factory=dict)  # replica -> the budget it chose for itself
    max_batch_tokens: int | None = None  # the one every replica uses: the smallest they chose, or the given one

    @property
    def settings(self) -> dict[str, Any]:
        parallel = {**self.options.record(), "replicas_lost": list(self.lm.lost)}
        if self.max_batch_tokens is None:
            return {"data_parallel": parallel}
        chosen = {str(k): v for k, v in sorted(self.budgets.items())}
        return {"max_batch_tokens": self.max_batch_tokens, "data_parallel": {**parallel, "replica_budgets": chosen}}

    def router_counter(self) -> RouterCounter | None:
        """Counts in the replicas, per call, summed here (None when their backend counts none)."""
        import ray

        live = [a for a, alive in zip(self.lm.actors, self.lm.alive, strict=True) if alive]
        if not any(ray.get([a.count_routing.remote() for a in live])):
            return None
        self.lm.counts = MergedRouterCounts()
        return self.lm.counts

    def close(self) -> None:
        import ray

        self.lm.closed = True
        for actor in self.lm.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        if self.started_ray:
            ray.shutdown()


def _endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) that a --ray-address must answer on; None for `auto` (Ray looks it up itself)."""
    if address == "auto":
        return None
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    try:
        return host.strip("[]"), int(port) if port else RAY_DEFAULT_PORT
    except ValueError:
        raise ConfigError(
            f"--ray-address {address}: expected host:port (e.g. 10.0.0.1:6379), ray://host:10001 or auto"
        ) from None


def _check_reachable(address: str) -> None:
    """A one-line error, within CONNECT_SECONDS, when nothing answers at the address."""
    endpoint = _endpoint(address)
    if endpoint is None:
        return
    try:
        socket.create_connection(endpoint, timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        reason = f"no answer within {CONNECT_SECONDS:.0f} s" if isinstance(exc, TimeoutError) else exc.strerror
        raise ConfigError(
            f"--ray-address {address}: cannot reach the Ray cluster ({reason or exc}); check that its head node "
            f"runs there (`ray status --address {address}` on a machine of the cluster) and that this machine "
            "may connect to that port"
        ) from None


@contextlib.contextmanager
def _run_keeps_its_signals() -> Iterator[None]:
    """ray.init installs a SIGTERM handler that exits the process from under the run (Ray's threads then
    abort it): the run's handlers (evalsuite.resume.signals) are put back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)


def _quiet_forwarded_errors() -> None:
    """Ray prints the error messages of the cluster (a raylet's notes about workers of a lost node...) into
    the driver's terminal whatever log_to_driver says; a lost replica is the run's to report, in one line."""
    from ray._private import worker

    shown = worker.print_to_stdstream
    if getattr(shown, "evalsuite_quiet", False):
        return

    def print_to_stdstream(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if data.get("pid") != "raylet":
            shown(data, *args, **kwargs)

    print_to_stdstream.evalsuite_quiet = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = print_to_stdstream


def _start_ray(parallel: ParallelOptions) -> bool:
    """Join the cluster (or start a private local instance); True when this call started Ray."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--data-parallel needs Ray: install it with `pip install 'evalsuite[ray]'` (make install does)"
        ) from None
    _quiet_forwarded_errors()
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
        # Always a new instance of our own: without "local", Ray joins the cluster named in its temp
        # directory (the last `ray start` on this machine, even a stopped one, or another job's).
        kwargs["address"] = "local"
        # Enough CPU slots for every replica even on a small machine: a replica is mostly one process.
        kwargs["num_cpus"] = max(os.cpu_count() or 1, parallel.replicas * parallel.cpus_per_replica)
    else:
        assert parallel.ray_address is not None
        _check_reachable(parallel.ray_address)
        kwargs["address"] = parallel.ray_address
    try:
        with _run_keeps_its_signals():
            ray.init(**kwargs)
    except Exception as exc:
        where = "a local Ray instance" if local else f"the Ray cluster at {parallel.ray_address}"
        raise ConfigError(f"--data-parallel: could not start {where} ({one_line(exc)}); check --ray-address") from exc
    return True


def _loaded(actors: Sequence[Any]) -> dict[int, Described]:
    """Each replica's description as it finishes loading; a replica lost meanwhile (its process or node
    died, or it failed for a reason of its own) is left out with a one-line note. Bad input, which every
    replica would meet, is raised as the replica said it."""
    import ray
    from tqdm.auto import tqdm

    pending = {a.describe.remote(): k for k, a in enumerate(actors)}
    described: dict[int, Described] = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        k = pending.pop(ready[0])
        try:
            described[k] = ray.get(ready[0])
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc
            if isinstance(cause, EvalsuiteError):  # bad input, said in one line by the replica
                raise cause from None
            why = "its process or node is gone" if isinstance(exc, _lost_errors()) else one_line(cause)[:200]
            tqdm.write(
                f"warning: data parallel: replica {k} was lost while loading the model ({type(exc).__name__}: "
                f"{why}); its share goes to the other replicas",
                file=sys.stderr,
            )
    return described


def load(module: str, options: BackendOptions, files: ModelFiles, parallel: ParallelOptions) -> ParallelBackend:
    """Start `parallel.replicas` replicas of the backend in `module` over the model `files` and wait until
    they are loaded; those lost while loading are dropped (the run fails only when none loads)."""
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
        ).remote(module, replica_options, files)
        for k in range(parallel.replicas)
    ]

    def give_up() -> None:
        for a in actors:
            with contextlib.suppress(Exception):
                ray.kill(a)
        if started:
            ray.shutdown()

    try:
        described = _loaded(actors)
    except BaseException:
        give_up()
        raise
    if not described:
        give_up()
        raise ModelError(
            f"data parallel: none of the {len(actors)} replicas could load the model (the notes above say why); "
            "check memory per replica (--gpus-per-replica, --cpus-per-replica) and the cluster's nodes, then rerun"
        )
    live = sorted(described)
    infos = [described[k].info for k in live]
    devices = tuple(sorted({d for info in infos for d in info.devices}))
    info = replace(infos[0], devices=devices)
    lm = DataParallelLM(actors)
    for k in range(len(actors)):
        if k not in described:
            lm.alive[k] = False
            lm.lost.append(k)
    # One budget for all: a replica's own choice depends on its device's memory, and the budget decides
    # how a call is batched, so each call's answers would depend on the replica it went to.
    budgets = {k: b for k in live if (b := described[k].max_batch_tokens) is not None}
    common = options.max_batch_tokens or (min(budgets.values()) if budgets else None)
    if common is not None and options.max_batch_tokens is None:
        ray.get([actors[k].use_budget.remote(common) for k in budgets])
    # Calls as the replicas' backend wants them (so each call is one process's), one in flight per replica.
    calls = replace(described[live[0]].calls, in_flight=len(actors))
    return ParallelBackend(lm, info, parallel, started, calls, budgets=budgets, max_batch_tokens=common)


__all__ = ["DataParallelLM", "ParallelBackend", "ParallelOptions", "Replica", "load"]
