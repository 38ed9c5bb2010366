"""argparse value types shared by the subcommands; a bad value becomes one `error:` line."""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def _number(text: str) -> float:
    """`text` as a float; nan when it is not a number, which every range check below then refuses."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def non_negative_float(text: str) -> float:
    value = _number(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, 0 or more")
    return value


def seed(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed; give a whole number, 0 or more")
    return int(text)


def confidence_level(text: str) -> float:
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a confidence level between 0 and 1, e.g. 0.95")
    return value


def tolerance(text: str) -> float:
    """A log-likelihood tolerance in nats: a finite number, 0 or more."""
    value = _number(text)
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 1e-4)")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0 (e.g. 1e-4)")
    return value
