"""The errors evalsuite raises on bad input; each message says what is wrong, where, and how to fix it."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (third-party messages often span several)."""
    return " ".join(str(exc).split())


class EvalsuiteError(Exception):
    """Base class: the CLI prints `error: <message>` and exits 1 for every subclass."""


class ConfigError(EvalsuiteError, ValueError):
    """A bad option or argument (unknown benchmark, bad dtype, offline without a data dir)."""


class DataError(EvalsuiteError, ValueError):
    """A dataset that is missing, unreadable or has the wrong columns."""


class ModelError(EvalsuiteError, ValueError):
    """A model path or id that cannot be loaded."""


class RunDirError(EvalsuiteError, ValueError):
    """A run directory that is incomplete, not a run directory, or one that must not be overwritten."""


class CardError(EvalsuiteError, ValueError):
    """A model card that cannot be read or updated."""


class CompareError(EvalsuiteError, ValueError):
    """Runs that cannot be compared the way that was asked."""


class RecipeError(EvalsuiteError, ValueError):
    """A merge recipe that cannot be merged: bad YAML or keys, unknown models, models that do not fit together."""


class HubError(EvalsuiteError, OSError):
    """A Hub request that failed: a missing or gated repo, a missing revision, a Hub that does not answer."""


class OutputExistsError(EvalsuiteError, FileExistsError):
    """An output path that already holds something evalsuite will not overwrite."""


class UsageError(EvalsuiteError):
    """Bad command-line usage (unknown option, a value of the wrong type); the CLI exits 2."""
