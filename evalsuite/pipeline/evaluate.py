"""Runs benchmarks of the table through a backend and scores them; knows no benchmark by name.

Per benchmark: build each document's requests in v1 order (evalsuite.benchmarks.fewshot), answer them with
the backend's `lm` (loglikelihood / generate_until, in the calls the backend declares), score each
document with its task hooks, and aggregate (mean per config, then the unweighted mean over configs:
MMLU's macro mean over 57 subjects).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

from evalsuite.benchmarks.contract import Doc, Request
from evalsuite.benchmarks.fewshot import context_prefix, v1_schedule
from evalsuite.benchmarks.spec import BenchmarkSpec
from evalsuite.checks.data import check_rows
from evalsuite.data.sources import DataSource, load_rows
from evalsuite.engine.base import Backend
from evalsuite.errors import DataError, NonFiniteAnswer
from evalsuite.pipeline.progress import Ticker
from evalsuite.results import BenchmarkOutcome, BenchmarkScore, DocRecord, RequestRecord
from evalsuite.results.fingerprint import fingerprint
from evalsuite.scoring import macro_stderr, mean, stderr

Observer = Callable[[str], AbstractContextManager[Any]]
# Called as each benchmark completes: (name, outcome, requests answered before this run started).
OnDone = Callable[[str, BenchmarkOutcome, int], None]


@dataclass(frozen=True)
class PreparedDoc:
    config: str
    doc_id: int
    doc: Doc
    requests: tuple[Request, ...]


def _process(spec: BenchmarkSpec, source: DataSource, config: str, split: str) -> list[Doc]:
    """The split's rows through the task's process_doc; a row the task refuses is a one-line DataError
    saying where (any other exception is a bug in the task, and surfaces as one)."""
    rows = load_rows(source, spec, config, split)
    check_rows(rows, spec.columns, f"{spec.dataset}/{config}/{split}")
    docs = []
    for i, row in enumerate(rows):
        try:
            docs.append(spec.task.process_doc(row, config))
        except DataError as exc:
            raise DataError(
                f"{spec.dataset}/{config}/{split} row {i}: {exc}; the rows must follow the Hub dataset's schema"
            ) from exc
    return docs


def prepare(spec: BenchmarkSpec, source: DataSource, limit: int | None = None) -> list[PreparedDoc]:
    """Every document's requests, in v1's evaluation order (per config: shuffled, shots drawn)."""
    task = spec.task
    prepared = []
    for config in spec.configs:
        docs = _process(spec, source, config, spec.eval_split)
        pool: list[Doc] = []
        if spec.num_fewshot and spec.fewshot_split:
            pool = _process(spec, source, config, spec.fewshot_split)
            if len(pool) < spec.num_fewshot:
                raise DataError(
                    f"{spec.dataset}/{config}/{spec.fewshot_split}: has {len(pool)} rows, but {spec.name} is "
                    f"{spec.num_fewshot}-shot and draws {spec.num_fewshot} per document; give the full split"
                )
        description = task.description(config)
        for item in v1_schedule(len(docs), len(pool), spec.num_fewshot, spec.sampling, limit):
            prefix = context_prefix(description, [task.shot(pool[i]) for i in item.shot_ids])
            doc = docs[item.doc_id]
            prepared.append(PreparedDoc(config, item.doc_id, doc, tuple(task.requests(doc, prefix))))
    return prepared


def answer(
    backend: Backend, requests: Sequence[Request], progress: Any, answered: frozenset[int] = frozenset()
) -> list[Any]:
    """Responses in request order: a float log-likelihood or a generated string per request.

    The requests go to `backend.lm` in the calls `backend.calls` makes of them, `calls.in_flight` at once
    (data-parallel replicas), the same calls as one at a time. `answered`: positions an earlier attempt
    answered (resume), already counted in `progress`."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from lm_eval.api.instance import Instance

    lm = backend.lm
    calls = backend.calls.split([req.request_type for req in requests])
    responses: list[Any] = [None] * len(requests)

    def call(request_type: str, part: list[int]) -> list[Any]:
        instances = [Instance(request_type=request_type, doc={}, arguments=requests[i].arguments, idx=0) for i in part]
        return list(getattr(lm, request_type)(instances))

    def keep(request_type: str, part: list[int], outs: list[Any], ticker: Ticker | None = None) -> None:
        for i, out in zip(part, outs, strict=True):
            # loglikelihood answers (logprob, is_greedy); generate_until answers the cut text
            responses[i] = float(out[0]) if request_type == "loglikelihood" else out
        if ticker is None:
            progress.update(sum(1 for i in part if i not in answered))
        else:
            ticker.finish()

    workers = backend.calls.in_flight
    if workers == 1:  # one call at a time: the bar moves with each answer the backend reports
        ticker = Ticker(lm, progress)
        try:
            for request_type, part in calls:
                ticker.expect(sum(1 for i in part if i not in answered))
                keep(request_type, part, call(request_type, part), ticker)
        finally:
            ticker.remove()
        return responses
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(call, t, part): (t, part) for t, part in calls}
        try:
            for future in as_completed(futures):
                keep(*futures[future], future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # the calls not yet sent are not made
            raise
    return responses


def _record(req: Request, response: Any) -> RequestRecord:
    if req.request_type == "loglikelihood":
        return RequestRecord(context=req.context, continuation=req.continuation, loglikelihood=response)
    return RequestRecord(context=req.context, generation=response)


def score_doc(spec: BenchmarkSpec, item: PreparedDoc, responses: Sequence[Any]) -> DocRecord:
    scored = spec.task.score(item.doc, responses)
    main: list[RequestRecord] = []
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for req, resp in zip(item.requests, responses, strict=True):
        if req.group is None:
            main.append(_record(req, resp))
        else:
            groups[f"{req.group}_requests"].append(_record(req, resp).to_dict())
    return DocRecord(
        doc_id=item.doc_id,
        subject=item.config if len(spec.configs) > 1 else None,
        requests=tuple(main),
        metrics=dict(scored.metrics),
        extra={**scored.extra, **groups},
    )


def aggregate(spec: BenchmarkSpec, docs: Sequence[DocRecord]) -> BenchmarkScore:
    """Mean per config, then the unweighted mean over configs (one config: the plain mean)."""
    by_config: dict[str | None, list[DocRecord]] = defaultdict(list)
    for d in docs:
        by_config[d.subject].append(d)
    metric_names = list(docs[0].metrics)
    per_config = {cfg: {m: mean([d.metrics[m] for d in ds]) for m in metric_names} for cfg, ds in by_config.items()}
    metrics = {m: mean([pc[m] for pc in per_config.values()]) for m in metric_names}
    error = macro_stderr([stderr([d.metrics[spec.metric] for d in ds]) for ds in by_config.values()])
    subscores = {str(cfg): pc[spec.metric] for cfg, pc in per_config.items()} if len(spec.configs) > 1 else {}
    return BenchmarkScore(
        benchmark=spec.name,
        metric=spec.metric,
        value=metrics[spec.metric],
        stderr=error,
        n_docs=len(docs),
        num_fewshot=spec.num_fewshot,
        metrics=metrics,
        subscores=subscores,
    )


@contextlib.contextmanager
def no_observer(name: str) -> Iterator[None]:
    yield


def prepare_all(
    specs: Sequence[BenchmarkSpec], source: DataSource, limit: int | None = None
) -> dict[str, list[PreparedDoc]]:
    """All benchmarks' requests; call it before loading the model, so bad data fails in seconds."""
    return {spec.name: prepare(spec, source, limit) for spec in specs}


def evaluate(
    backend: Backend,
    specs: Sequence[BenchmarkSpec],
    prepared: dict[str, list[PreparedDoc]],
    *,
    answered: Mapping[str, frozenset[int]] | None = None,
    progress: bool = True,
    observer: Observer = no_observer,
    on_done: OnDone | None = None,
) -> dict[str, BenchmarkOutcome]:
    """Evaluate each benchmark with `backend`; `observer(name)` wraps its model calls (router statistics
    and the accounting use it), `on_done` persists each benchmark as it completes (resume). `answered`:
    per benchmark, the request positions an earlier attempt answered (resume; none when not given)."""
    from tqdm.auto import tqdm

    outcomes = {}
    for spec in specs:
        items = prepared[spec.name]
        flat = [req for item in items for req in item.requests]
        # resume: the positions an earlier attempt answered (the caller's, when it knows them already)
        earlier = answered.get(spec.name, frozenset()) if answered is not None else frozenset()
        bar = tqdm(total=len(flat), initial=len(earlier), desc=f"{spec.name:<10}", unit="req", disable=not progress)
        try:
            with bar, observer(spec.name):
                responses = answer(backend, flat, bar, earlier)
        except NonFiniteAnswer as exc:
            raise exc.at(spec.name, _doc_of(spec, items, exc.arguments)) from None
        records, pos = [], 0
        for item in items:
            n = len(item.requests)
            records.append(score_doc(spec, item, responses[pos : pos + n]))
            pos += n
        # Aggregate in evaluation order (v1 summed in that order: same bits), then store in dataset order.
        score = replace(aggregate(spec, records), fingerprint=fingerprint(flat))
        outcomes[spec.name] = BenchmarkOutcome(score, tuple(dataset_order(spec, records)))
        if on_done is not None:
            on_done(spec.name, outcomes[spec.name], len(earlier))
    return outcomes


def dataset_order(spec: BenchmarkSpec, docs: Sequence[DocRecord]) -> list[DocRecord]:
    """Dataset order per config, configs in table order (how samples are stored)."""
    return sorted(docs, key=lambda d: (spec.configs.index(d.subject) if d.subject else 0, d.doc_id))


def _doc_of(spec: BenchmarkSpec, items: Sequence[PreparedDoc], arguments: tuple[Any, ...]) -> str:
    """Names the document a request belongs to, e.g. `document 7` or `document 7 of anatomy`."""
    for item in items:
        if any(req.arguments == arguments for req in item.requests):
            return f"document {item.doc_id}" + (f" of {item.config}" if len(spec.configs) > 1 else "")
    return "a document"
