"""The errors evalsuite raises on bad input; each message says what is wrong, where, and how to fix it."""

from __future__ import annotations

from typing import Any


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


class NonFiniteAnswer(ModelError):
    """The model answered with NaN or infinity: a log-likelihood, or its next-token logits while generating
    (`generated`: the tokens generated before them)."""

    def __init__(self, request_type: str, arguments: Any, value: float, generated: int | None = None) -> None:
        self.arguments = tuple(arguments)
        self.value = value
        self.request_type = request_type
        self.generated = generated
        super().__init__(self._message("a request"))

    def __reduce__(self) -> Any:  # crosses processes (data-parallel replicas) with its fields
        return (type(self), (self.request_type, self.arguments, self.value, self.generated))

    def _message(self, where: str) -> str:
        if self.generated is None:
            tail = str(self.arguments[-1])[:40] if self.arguments else ""
            what = f"the model's {self.request_type} of continuation {tail!r} is {self.value}"
        else:
            what = f"the model's next-token logits are {self.value} after {self.generated} generated tokens"
        return (
            f"{where}: {what}; stopped at the first non-finite answer, the answers before it are kept for --resume "
            "(which needs the same model and settings; a fix such as another --dtype starts over with --fresh)"
        )

    def at(self, benchmark: str, doc: str) -> ModelError:
        """The same error, naming the benchmark and document."""
        return ModelError(self._message(f"{benchmark} {doc}"))


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
