"""How many CPU threads torch uses when the user does not say: the cores no other process is using.

torch's own default is every core. Its threads wait for each other at every operation, so when another
process holds a core, each operation waits for the slowest thread's turn: on a busy 2-core machine the
fast backend took 117 s with 2 threads for what it does in 34 s with one (bench/RESULTS.md). The cores
this process may run on, less the load of the other processes (the 1-minute load average, less this
process's own), rounded down, at least one: all cores on an idle machine, one on a busy one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadChoice:
    count: int | None  # None: left to torch (OMP_NUM_THREADS set)
    rule: str  # how it was chosen, for the run's record


_chosen: ThreadChoice | None = None


def idle_cores() -> tuple[int, int, float]:
    """(threads for this process, the cores it may run on, the load average it saw)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cores, cores, 0.0
    others = max(0.0, load - 1.0)  # this process is running: it counts one
    return max(1, min(cores, math.floor(cores - others + 0.5))), cores, load


def choose(requested: int | None) -> ThreadChoice:
    """Set torch's intra-op threads: `requested` (--threads), else OMP_NUM_THREADS, else the idle cores."""
    import torch

    global _chosen
    if requested is not None:
        torch.set_num_threads(requested)
        _chosen = ThreadChoice(requested, "requested (--threads, or the demo's one thread)")
    elif os.environ.get("OMP_NUM_THREADS"):
        _chosen = ThreadChoice(None, "OMP_NUM_THREADS")
    else:
        count, cores, load = idle_cores()
        torch.set_num_threads(count)
        _chosen = ThreadChoice(count, f"idle cores: {cores} cores, load average {load:.1f} at start")
    return _chosen


def chosen() -> ThreadChoice | None:
    """The last choice made in this process (None before a model was loaded)."""
    return _chosen
