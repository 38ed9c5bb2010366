"""The resume wrapper around a backend: what it answers from the store, what it persists and when.

The backend here is a small stand-in `LM` that answers from the request text and counts its calls;
the wrapper and the store are the real ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from conftest import as_backend
from evalsuite.benchmarks.contract import Request
from evalsuite.engine.base import Calls
from evalsuite.errors import NonFiniteAnswer
from evalsuite.resume.lm import ResumableBackend
from evalsuite.resume.store import AnswerStore


class LengthLM(LM):
    """-len(continuation) for each request, reported one by one through lm-eval's cache hook as HFLM
    does; `fail_after` raises (as a kill would interrupt) after that many answers."""

    def __init__(self, fail_after: int | None = None, value: float | None = None) -> None:
        super().__init__()
        self.asked: list[tuple[str, str]] = []
        self.fail_after = fail_after
        self.value = value

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for inst in requests:
            if self.fail_after is not None and len(self.asked) == self.fail_after:
                raise KeyboardInterrupt
            self.asked.append(inst.args)
            answer = (-float(len(inst.args[1])) if self.value is None else self.value, False)
            self.cache_hook.add_partial("loglikelihood", inst.args, answer)
            out.append(answer)
        return out

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        raise NotImplementedError


REQUESTS = [Request("Q: 1+1?\nA:", " two"), Request("Q: 1+1?\nA:", " three"), Request("Q: 2+2?\nA:", " four")]


def resumable(inner: LM, store: AnswerStore, calls: Calls | None = None) -> Any:
    """The inner LM behind the store as the pipeline wraps a backend; `.lm` answers, `.answered` says
    what the store holds."""
    return Wrapped(ResumableBackend(as_backend(inner, calls), store))


class Wrapped:
    """A ResumableBackend read as its `lm` (what the tests call), with the backend's `answered`."""

    def __init__(self, backend: ResumableBackend) -> None:
        self.backend = backend
        self.store = backend.store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend.lm, name)


def answered_already(wrapped: Wrapped, requests: list[Request]) -> set[int]:
    return wrapped.backend.answered(requests)


def instances(requests: list[Request]) -> list[Instance]:
    return [Instance("loglikelihood", doc={}, arguments=r.arguments, idx=0) for r in requests]


def test_answers_are_kept_and_reused_without_asking_the_backend_again(tmp_path: Path):
    store_path = tmp_path / "answers.jsonl"
    first = LengthLM()
    lm = resumable(first, AnswerStore(store_path, "fp"))
    assert lm.loglikelihood(instances(REQUESTS), disable_tqdm=True) == [(-4.0, False), (-6.0, False), (-5.0, False)]
    lm.store.close()

    again = LengthLM()
    lm = resumable(again, AnswerStore(store_path, "fp"))
    assert len(answered_already(lm, REQUESTS)) == 3
    assert lm.loglikelihood(instances(REQUESTS)) == [(-4.0, False), (-6.0, False), (-5.0, False)]  # no kwarg
    assert again.asked == []


def test_each_answer_is_kept_as_it_completes_when_the_call_is_interrupted(tmp_path: Path):
    store_path = tmp_path / "answers.jsonl"
    lm = resumable(LengthLM(fail_after=2), AnswerStore(store_path, "fp"))
    with pytest.raises(KeyboardInterrupt):
        lm.loglikelihood(instances(REQUESTS), disable_tqdm=True)
    lm.store.close()
    resumed = LengthLM()
    lm = resumable(resumed, AnswerStore(store_path, "fp"))
    assert len(answered_already(lm, REQUESTS)) == 2
    assert lm.loglikelihood(instances(REQUESTS), disable_tqdm=True)[2] == (-5.0, False)
    assert resumed.asked == [REQUESTS[2].arguments]  # only the one never answered


def test_another_fingerprint_reuses_nothing(tmp_path: Path):
    store_path = tmp_path / "answers.jsonl"
    resumable(LengthLM(), AnswerStore(store_path, "fp-a")).loglikelihood(instances(REQUESTS))
    assert len(answered_already(resumable(LengthLM(), AnswerStore(store_path, "fp-b")), REQUESTS)) == 0


def test_a_torn_last_line_is_dropped_and_cut_off_before_appending(tmp_path: Path):
    store_path = tmp_path / "answers.jsonl"
    store = AnswerStore(store_path, "fp")
    store.put("k1", [-1.0, True])
    store.close()
    with store_path.open("ab") as fh:
        fh.write(b'{"k": "k2", "a": [-2.')  # a write cut short by a power loss
    store = AnswerStore(store_path, "fp")
    assert store.answers == {"k1": [-1.0, True]}
    store.put("k3", [-3.0, False])
    store.close()
    assert AnswerStore(store_path, "fp").answers == {"k1": [-1.0, True], "k3": [-3.0, False]}


def _damage(line: bytes, how: str, tmp_path: Path) -> bytes:
    """One stored line as a bad disk sector, a hand edit or another fingerprint's run would leave it."""
    record = json.loads(line)
    if how == "unreadable":
        return b"\x00\x00garbage\n"
    if how == "nan":
        return line.replace(json.dumps(record["a"][0]).encode(), b"NaN")
    if how == "other-fingerprint":  # the same answer, written (checksum and all) under another fingerprint
        other = AnswerStore(tmp_path / "other.jsonl", "fp-other")
        other.put(record["k"], record["a"])
        other.close()
        return (tmp_path / "other.jsonl").read_bytes()
    record["a"][0] += 1.0  # altered: still valid JSON and a plausible answer, the checksum unchanged
    return (json.dumps(record) + "\n").encode()


@pytest.mark.parametrize("how", ["unreadable", "altered", "nan", "other-fingerprint"])
def test_a_bad_line_in_the_middle_is_skipped_alone_and_counted(tmp_path: Path, how: str):
    store_path = tmp_path / "answers.jsonl"
    store = AnswerStore(store_path, "fp")
    for i in range(5):
        store.put(f"k{i}", [-float(i) - 0.5, i % 2 == 0])
    store.close()
    lines = store_path.read_bytes().splitlines(keepends=True)
    lines[2] = _damage(lines[2], how, tmp_path)
    store_path.write_bytes(b"".join(lines))
    reopened = AnswerStore(store_path, "fp")
    assert reopened.skipped == [3]  # line 3 only: every sound answer after it is kept
    assert reopened.answers == {f"k{i}": [-float(i) - 0.5, i % 2 == 0] for i in (0, 1, 3, 4)}


@pytest.mark.parametrize("value", [math.nan, -math.inf])
def test_a_non_finite_answer_stops_and_is_not_kept(tmp_path: Path, value: float):
    lm = resumable(LengthLM(value=value), AnswerStore(tmp_path / "answers.jsonl", "fp"))
    with pytest.raises(NonFiniteAnswer, match=r"' two'"):
        lm.loglikelihood(instances(REQUESTS))
    assert len(lm.store) == 0


def test_the_wrapper_forwards_the_inner_backends_members(tmp_path: Path):
    inner = as_backend(LengthLM(), Calls(per_call={"loglikelihood": 7}, in_flight=3, whole=True))
    wrapped = ResumableBackend(inner, AnswerStore(tmp_path / "a.jsonl", "fp"))
    assert wrapped.calls is inner.calls and wrapped.settings == inner.settings
    assert wrapped.meter() is None and wrapped.router_counter() is None


def test_progress_starts_at_what_an_earlier_attempt_answered(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from test_cli_errors import wg_rows

    from evalsuite.benchmarks.table import BY_NAME
    from evalsuite.data.sources import LocalDirSource
    from evalsuite.pipeline.evaluate import evaluate, prepare_all
    from synth import write_split

    spec = BY_NAME["winogrande"]
    write_split(tmp_path, spec.dataset, "winogrande_xl", "train", wg_rows(6))
    write_split(tmp_path, spec.dataset, "winogrande_xl", "validation", wg_rows(2))
    prepared = prepare_all([spec], LocalDirSource(tmp_path))
    backend = LengthLM()
    earlier = resumable(backend, AnswerStore(tmp_path / "answers.jsonl", "fp"))
    earlier.loglikelihood(instances(list(prepared["winogrande"][0].requests)))  # the earlier attempt: document 0
    earlier.store.close()
    lm = resumable(backend, AnswerStore(tmp_path / "answers.jsonl", "fp"))
    capsys.readouterr()

    flat = [req for item in prepared["winogrande"] for req in item.requests]
    earlier_answers = {"winogrande": frozenset(lm.backend.answered(flat))}  # as the pipeline asks it
    evaluate(lm.backend, [spec], prepared, answered=earlier_answers, progress=True)
    bar = capsys.readouterr().err
    assert " 2/4 " in bar and " 4/4 " in bar and " 0/4 " not in bar  # 2 of 2 + 2 requests were done
    assert len(backend.asked) == 2 + 2  # the second call asked only document 1's two


class SlowParallelLM(LengthLM):
    """LengthLM answering several calls at once (as data-parallel replicas do), slowly enough that the
    calls overlap; `most` is the largest number of calls seen in flight together."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.in_flight = self.most = 0

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        out = []
        try:
            for inst in requests:
                time.sleep(0.005)
                with self.lock:
                    self.asked.append(inst.args)
                answer = (-float(len(inst.args[1])), False)
                self.cache_hook.add_partial("loglikelihood", inst.args, answer)
                out.append(answer)
        finally:
            with self.lock:
                self.in_flight -= 1
        return out


def test_concurrent_calls_through_the_wrapper_keep_each_answer_once(tmp_path: Path):
    backend = SlowParallelLM()
    lm = resumable(backend, AnswerStore(tmp_path / "answers.jsonl", "fp"), Calls(in_flight=4))
    assert lm.backend.calls.in_flight == 4  # the pipeline keeps as many calls in flight as the backend takes
    calls = [[Request(f"Q{c}:", f" answer {i}" + "!" * i) for i in range(5)] for c in range(8)]
    with ThreadPoolExecutor(max_workers=lm.backend.calls.in_flight) as pool:
        outs = list(pool.map(lambda reqs: lm.loglikelihood(instances(reqs)), calls))
    assert backend.most > 1  # the calls did overlap
    assert outs == [[(-float(len(r.continuation)), False) for r in reqs] for reqs in calls]
    assert len(backend.asked) == len(set(backend.asked)) == 8 * 5  # each request reached the backend once
    keys = [json.loads(line)["k"] for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 8 * 5  # and each answer was stored once


def test_the_fingerprint_names_the_backend_setting_that_changed():
    from conftest import GOLDEN
    from evalsuite.data.sources import LocalDirSource
    from evalsuite.engine.base import BackendOptions
    from evalsuite.engine.model_files import resolve
    from evalsuite.resume.fingerprint import run_fingerprint as fingerprint_of

    model = GOLDEN / "models" / "tiny-moe"
    source = LocalDirSource(GOLDEN / "data")
    versions = {"evalsuite": "1", "torch": "2"}

    def run_fingerprint(options: BackendOptions, source: LocalDirSource, versions: dict[str, str]) -> Any:
        return fingerprint_of(options, resolve(options), source, versions)

    v1 = run_fingerprint(BackendOptions(model=str(model)), source, versions)
    assert v1.fields["backend"]["backend"] == "fast" and v1.fields["backend"]["batch_size"] is None
    # every model file that decides the answers, weights and tokenizer alike, by its sha256
    weights = (model / "model.safetensors").read_bytes()
    assert v1.fields["model"]["model.safetensors"] == hashlib.sha256(weights).hexdigest()
    assert "tokenizer.json" in v1.fields["model"] and "config.json" in v1.fields["model"]
    hf = run_fingerprint(BackendOptions(model=str(model), backend="hf"), source, versions)
    batched = run_fingerprint(BackendOptions(model=str(model), backend="hf", batch_size=4), source, versions)
    assert batched.differs_from(hf) == "backend batch_size was unset, now 4"
    longer = run_fingerprint(BackendOptions(model=str(model), max_length=64), source, versions)
    assert longer.differs_from(v1) == "backend max_length was unset, now 64"
    # the fast backend's batches (and so its rounding) follow its token budget
    budget = run_fingerprint(BackendOptions(model=str(model), max_batch_tokens=512), source, versions)
    assert budget.differs_from(v1) == "backend max_batch_tokens was unset, now 512"
    # what only decides whether a model loads at all does not change the answers
    allowed = run_fingerprint(BackendOptions(model=str(model), allow_missing_weights=True), source, versions)
    assert allowed.differs_from(v1) is None and allowed.digest() == v1.digest()
