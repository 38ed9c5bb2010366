"""How paths and command lines are shown in what evalsuite writes (results.json, card links): relative to
the working directory or under `~`, never the user's absolute home path, and never a secret."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePath
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

REDACTED = "<redacted>"
# Options whose value is a credential, whatever it looks like (`--token`, `--hf-api-key`, `--password`;
# not `--max-batch-tokens`, a count).
_SECRET_OPTION = re.compile(r"^-{1,2}[\w-]*(token(?!s)|key|secret|password|passwd|auth)[\w-]*$", re.IGNORECASE)
# Values shaped like the access tokens of the services a user of evalsuite holds (Hugging Face, OpenAI,
# GitHub, Slack), wherever they stand: after a space, a `/`, or glued after a `_` or `-` in a file name.
# Bare 40-character keys are left alone: a 40-hex commit sha looks the same and matters.
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}"
    r"|xox[abpr]-[\w-]{10,})"
)
# `HF_TOKEN=...` given as an argument (e.g. through `env` or a launcher).
_SECRET_ASSIGNMENT = re.compile(r"^([\w-]*(?:TOKEN|KEY|SECRET|PASSWORD)[\w-]*=).+$", re.IGNORECASE)
# URL query parameters that carry a credential (`?token=`, `access_token`, `api_key`, signed URLs' `sig`).
_SECRET_PARAM = re.compile(r"(token|key|secret|password|passwd|auth|sig|signature|credential)", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


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


def home_path(path: str | os.PathLike[str]) -> str:
    """An absolute path as `~/...` when under the home directory (the same wherever the command is run
    from), else as it is: how a run records the paths of its command's options."""
    text = os.fspath(path)
    rel = _inside(Path(os.path.normpath(text)), Path.home()) if os.path.isabs(text) else None
    return text if rel is None else "~" + ("/" + rel.as_posix() if rel.parts else "")


def public_url(url: str) -> str:
    """A URL without its credentials: the password of `user:password@` (the user too when it is a token)
    and the value of every query parameter named like a credential become `<redacted>`."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return _TOKEN.sub(REDACTED, url)
    netloc = parts.netloc
    if "@" in netloc:
        user = _TOKEN.sub(REDACTED, parts.username or "")
        address = host + (f":{port}" if port is not None else "")
        netloc = f"{user}:{REDACTED}@{address}" if parts.password is not None else f"{user}@{address}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.search(name) for name, _ in pairs):
            query = urlencode([(n, REDACTED if _SECRET_PARAM.search(n) else v) for n, v in pairs], safe="<>")
    return _TOKEN.sub(REDACTED, urlunsplit(parts._replace(netloc=netloc, query=query)))


def public_text(text: str, argv: Sequence[str] = ()) -> str:
    """Any text evalsuite prints or writes that may hold a user's argument (an error message, a URL): the
    values `argv` gives to credential options, token-shaped values and URL credentials redacted."""
    for value in secret_values(argv):
        text = text.replace(value, REDACTED)
    return _TOKEN.sub(REDACTED, _URL.sub(lambda m: public_url(m.group(0)), text))


def secret_values(argv: Sequence[str]) -> list[str]:
    """The values of the credential options in a command line (`--token X`, `--hf-key=X`, `HF_TOKEN=X`)."""
    values: list[str] = []
    for previous, arg in zip(["", *argv], argv, strict=False):
        if arg.startswith("-") and "=" in arg and _SECRET_OPTION.match(arg.split("=", 1)[0]):
            values.append(arg.split("=", 1)[1])
        elif _SECRET_OPTION.match(previous) and not arg.startswith("-"):
            values.append(arg)
        elif m := _SECRET_ASSIGNMENT.match(arg):
            values.append(arg[len(m.group(1)) :])
    return sorted((v for v in values if v), key=len, reverse=True)  # longest first: no partial leftovers


def _public_value(value: str, option: str | None) -> str:
    if option is not None and _SECRET_OPTION.match(option):
        return REDACTED
    m = _SECRET_ASSIGNMENT.match(value)
    if m:
        return m.group(1) + REDACTED
    if "://" in value:
        return public_url(value)
    value = _TOKEN.sub(REDACTED, value)
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


def markdown_text(text: str) -> str:
    """A name for a card's heading or model-index: the characters that make links, HTML or code in
    Markdown backslash-escaped (`\\`, `[`, `]`, `<`, `>`, `&`, `*`, backtick), so it shows as written."""
    return re.sub(r"([\\\[\]<>&*`])", r"\\\1", text)
