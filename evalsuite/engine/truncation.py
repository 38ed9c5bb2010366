"""Requests longer than the model's context: cut from the left, as v1 did, and said once per benchmark.

lm-eval's HF class logs a warning for every log-likelihood request it cuts (hundreds on a short-context
model, breaking up the progress bars), and transformers warns, once per tokenizer, that a text longer
than the model's maximum "will result in indexing errors": not so here, every input is cut before the
model sees it. The run silences both; the accounting counts the requests cut (evalsuite.engine.accounting)
and the run prints one note per benchmark.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

# lm-eval's HF class logs under its module's name; its per-request truncation warning starts so.
HFLM_LOGGER = "lm_eval.models.huggingface"
PER_REQUEST_WARNING = "Combined length of context"
# transformers' flag, per tokenizer, that its "Token indices sequence length is longer ..." warning was given.
TOO_LONG_WARNED = "sequence-length-is-longer-than-the-specified-maximum"
# v1 kept a generation's last `max_length - 256` context tokens, whatever the request's max_gen_toks (lm-eval's
# HF class default; evalsuite.engine.v1_hflm), leaving room for 256 generated tokens.
V1_GENERATION_ROOM = 256


def loglikelihood_cut(length: int, max_length: int) -> bool:
    """A log-likelihood request of `length` tokens (context + continuation) loses its first tokens: the
    model is fed its last `max_length` tokens but one."""
    return length > max_length + 1


def generation_cut(context_length: int, max_length: int) -> bool:
    """A generation whose context of `context_length` tokens loses its first tokens."""
    return context_length > max_length - V1_GENERATION_ROOM


class _PerRequestWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(PER_REQUEST_WARNING)


def silence_per_request_warnings() -> logging.Filter:
    """From now on lm-eval's HF class does not log each request it cuts (its other messages pass); returns
    the filter, which `logging.getLogger(HFLM_LOGGER).removeFilter` takes off again."""
    quiet = _PerRequestWarnings()
    logging.getLogger(HFLM_LOGGER).addFilter(quiet)
    return quiet


@contextlib.contextmanager
def per_request_warnings_silenced() -> Iterator[None]:
    """Inside the block, lm-eval's HF class does not log each request it cuts."""
    quiet = silence_per_request_warnings()
    try:
        yield
    finally:
        logging.getLogger(HFLM_LOGGER).removeFilter(quiet)


def silence_too_long_warning(tokenizer: Any) -> None:
    """Mark transformers' warning about texts longer than the model's maximum as given, for this tokenizer
    alone (a tokenizer of custom code may have no such flag: nothing to do)."""
    warned = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warned, dict):
        warned[TOO_LONG_WARNED] = True


def cut_note(benchmark: str, cut: int | None, requests: int, max_length: int) -> str | None:
    """The one line a benchmark gets about its requests cut, or None when none were."""
    if not cut:
        return None
    return (
        f"note: {benchmark}: {cut} of {requests} requests did not fit the model's {max_length} tokens and were cut "
        "from the left, as v1 did"
    )
