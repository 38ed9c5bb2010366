"""The default torch thread count: the cores other processes leave idle, recorded with how it was chosen."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from evalsuite.engine import threads


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield
    torch.set_num_threads(before)


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def test_an_idle_machine_gets_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))  # this process alone
    choice = threads.choose(None)
    assert choice.count == _cores() == torch.get_num_threads()
    assert choice.rule.startswith("idle cores") and "load average 1.0" in choice.rule


def test_a_busy_machine_gets_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(os, "getloadavg", lambda: (_cores() + 3.0, 0.0, 0.0))
    assert threads.choose(None).count == 1 == torch.get_num_threads()


def test_one_core_taken_by_another_process_is_left_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (2.0, 2.0, 2.0))  # this process and one other
    assert threads.choose(None).count == max(1, _cores() - 1)


def test_threads_asked_for_and_omp_num_threads_win(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    assert threads.choose(3).count == 3 == torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose(None) == threads.ThreadChoice(None, "OMP_NUM_THREADS")
    assert threads.chosen() == threads.ThreadChoice(None, "OMP_NUM_THREADS")
