"""How paths and command lines are shown in what evalsuite writes (results.json, card links): relative to
the working directory or under `~`, never the user's absolute home path, and never a secret."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePath
from urllib.parse import quote, urlsplit, urlunsplit

REDACTED = "<redacted>"
# Options whose value is a credential, whatever it looks like (`--token`, `--hf-api-key`, `--password`).
_SECRET_OPTION = re.compile(r"^-{1,2}[\w-]*(token|key|secret|password|passwd|auth)[\w-]*$", re.IGNORECASE)
# Values shaped like the access tokens of the services a user of evalsuite holds (Hugging Face, OpenAI,
# GitHub, Slack). Bare 40-character keys are left alone: a 40-hex commit sha looks the same and matters.
_TOKEN = re.compile(
    r"\b(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|xox[abpr]-[\w-]{10,})"
)
# `HF_TOKEN=...` given as an argument (e.g. through `env` or a launcher).
_SECRET_ASSIGNMENT = re.compile(r"^([\w-]*(?:TOKEN|KEY|SECRET|PASSWORD)[\w-]*=).+$", re.IGNORECASE)


def _inside(path: Path, root: Path) -> PurePath | None:
    try:
        return path.relative_to(root)
    except ValueError:
        return None


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as evalsuite records it: as given when relative; an absolute one under the working
    directory as `./...`, under the home directory as `~/...`, anywhere else unchanged."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        return text  # relative to the working directory already, or `~/...`
    absolute = Path(os.path.normpath(text))
    cwd, home = Path.cwd(), Path.home()
    for root, prefix in ((cwd, "."), (home, "~")):
        rel = _inside(absolute, root)
        if rel is not None and (prefix == "~" or rel.parts):  # the cwd itself: its name says more than "."
            return prefix if not rel.parts else f"{prefix}/{rel.as_posix()}"
    return absolute.as_posix()


def _public_value(value: str, option: str | None) -> str:
    if option is not None and _SECRET_OPTION.match(option):
        return REDACTED
    m = _SECRET_ASSIGNMENT.match(value)
    if m:
        return m.group(1) + REDACTED
    value = _TOKEN.sub(REDACTED, value)
    parts = urlsplit(value) if "://" in value else None
    if parts is not None and parts.password:  # https://user:secret@host/...
        host = parts.hostname or ""
        return urlunsplit(parts._replace(netloc=f"{parts.username}:{REDACTED}@{host}"))
    return display_path(value) if os.path.isabs(value) else value


def public_command(argv: Sequence[str]) -> tuple[str, ...]:
    """The command line to record: paths shown by `display_path`, token-like values replaced by
    `<redacted>` (the value of any `--*token*`/`--*key*`/`--*secret*` option, and anything shaped like
    an access token)."""
    out: list[str] = []
    previous: str | None = None
    for arg in argv:
        if arg.startswith("-") and "=" in arg:
            name, value = arg.split("=", 1)
            out.append(f"{name}={_public_value(value, name)}")
            previous = None
            continue
        is_option = arg.startswith("-") and len(arg) > 1 and not arg[1:2].isdigit()
        out.append(arg if is_option else _public_value(arg, previous))
        previous = arg if is_option else None
    return tuple(out)


def link_target(target: str | os.PathLike[str]) -> str:
    """A valid Markdown link destination for a URL or a path: a path percent-encoded (spaces,
    parentheses, brackets, `%`; not as a `file://` URI, which renderers drop as unsafe); a URL keeps its
    own encoding, with only the characters that would end the link encoded."""
    text = os.fspath(target)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        return quote(text, safe="".join(chr(c) for c in range(33, 127) if chr(c) not in "()<>\\"))
    return quote(PurePath(text).as_posix(), safe="/~")


def link_text(text: str) -> str:
    """Text for between `[` and `]`: brackets and backslashes escaped."""
    return re.sub(r"([\\\[\]])", r"\\\1", text)
