"""The `evalsuite` command line: the parser, `main()` and the list of commands (one module each).

Errors on bad input print `error: <one line>` and exit 1; no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from evalsuite import __version__
from evalsuite.cli import card, compare, data, merge, router_stats, run, verify
from evalsuite.errors import EvalsuiteError, UsageError, one_line
from evalsuite.paths import public_command, public_text

UNRECOGNIZED = "unrecognized arguments: "


def _hide_values(message: str) -> str:
    """argparse lists unknown arguments as given; the value of an unknown (maybe mistyped credential)
    option is not shown: `--hf-tokn <value>`, `--hf-tokn=<value>`."""
    if not message.startswith(UNRECOGNIZED):
        return message
    shown: list[str] = []
    for word in message[len(UNRECOGNIZED) :].split(" "):
        if word.startswith("-") and "=" in word:
            shown.append(word.split("=", 1)[0] + "=<value>")
        elif shown and shown[-1].startswith("-") and not shown[-1].endswith(">") and not word.startswith("-"):
            shown.append("<value>")
        else:
            shown.append(word)
    return UNRECOGNIZED + " ".join(shown)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one `error:` line (exit 2) instead of a usage block."""

    commands: tuple[str, ...] = ()  # the top-level parser's command names
    command: str | None = None  # the command given: the top-level parser's errors point to its help

    def error(self, message: str) -> NoReturn:
        prog = f"{self.prog} {self.command}" if self.command and self.commands else self.prog
        raise UsageError(f"{self.prog}: {_hide_values(message)}; see `{prog} --help`")


# Each command is one module with `add_parser(sub)`; adding a command is one module and one line here.
COMMANDS = (run, data, card, compare, router_stats, verify, merge)


def build_parser() -> _Parser:
    parser = _Parser(
        prog="evalsuite",
        description="Reproduce Open LLM Leaderboard v1 scores, write model cards, compare merges.",
    )
    parser.add_argument("--version", action="version", version=f"evalsuite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    parser.commands = tuple(sub.choices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    commands = parser.commands
    asks_help = any(w == "-h" or (len(w) > 2 and ("--help".startswith(w) or "--version".startswith(w))) for w in given)
    if not any(word in commands for word in given) and not asks_help:
        # argparse would only say that a command is required, whatever was given instead
        got = f" (got: {' '.join(public_command(given))})" if given else ""  # never a token
        print(f"error: evalsuite: give a command{got}: {', '.join(commands)}; see `evalsuite --help`", file=sys.stderr)
        return 2

    parser.command = next(word for word in given if word in commands) if not asks_help else None

    def fail(message: str, code: int) -> int:
        # every error may quote an argument: never a credential (evalsuite.paths.public_text)
        print(f"error: {public_text(message, given)}", file=sys.stderr)
        return code

    try:
        args = parser.parse_args(given)
    except UsageError as exc:
        return fail(one_line(exc), 2)
    try:
        return int(args.func(args) or 0)
    except EvalsuiteError as exc:
        return fail(one_line(exc), 1)
    except KeyboardInterrupt as exc:
        # a run stopped by SIGTERM/SIGINT says what it kept (evalsuite.resume.signals.Interrupted)
        return fail(one_line(exc) or "interrupted; no run directory was written", int(getattr(exc, "exit_code", 130)))
    except OSError as exc:
        if os.environ.get("EVALSUITE_DEBUG"):
            raise
        return fail(one_line(exc), 1)


if __name__ == "__main__":
    sys.exit(main())
