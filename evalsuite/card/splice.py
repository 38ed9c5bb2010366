"""Edit a model card's text in place: only the front matter's `model-index` key and evalsuite's marker block
in the body change; every other byte of the file stays as it was.

These functions only find *where* things are; the YAML that goes in is made by huggingface_hub (card.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from evalsuite.errors import CardError

MODEL_INDEX_KEY = "model-index"
START_MARKER = "<!-- evalsuite:results:start -->"
END_MARKER = "<!-- evalsuite:results:end -->"
BOM = "\ufeff"

LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")  # str.splitlines also splits on \f, \x1c, ...
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def detect_line_break(text: str) -> str:
    """The card's line break, decided as the Hub and huggingface_hub's `_detect_line_ending` decide it."""
    cr, lf, crlf = text.count("\r"), text.count("\n"), text.count("\r\n")
    if cr + lf == 0:
        return "\n"
    if crlf == cr == lf:
        return "\r\n"
    return "\r" if cr > lf else "\n"


@dataclass(frozen=True)
class CardParts:
    """A card split the way the Hub splits it: [BOM] opening `---` line, YAML, closing `---` line, body."""

    bom: str
    opening: str  # "" when there is no front matter
    yaml: str | None  # None: no front matter
    closing: str
    body: str
    line_break: str
    yaml_first_line: int  # 1-based line of the file where the YAML starts (for error messages)

    def join(self, yaml: str, body: str) -> str:
        """The card with this YAML and body; a card without front matter gets one, like RepoCard.content."""
        lb = self.line_break
        opening, closing = (self.opening, self.closing) if self.yaml is not None else (f"---{lb}", f"{lb}---{lb}")
        return f"{self.bom}{opening}{yaml}{closing}{body}"


def split_card(text: str) -> CardParts:
    from huggingface_hub.repocard import REGEX_YAML_BLOCK  # the Hub server's own regex

    bom = BOM if text.startswith(BOM) else ""
    text = text[len(bom) :]
    lb = detect_line_break(text)
    m = REGEX_YAML_BLOCK.search(text)
    if m is None:
        return CardParts(bom, "", None, "", text, lb, 0)
    first_line = len(LINE_BREAK.findall(text[: m.start(2)])) + 1
    return CardParts(bom, m.group(1), m.group(2), m.group(3), text[m.end() :], lb, first_line)


# --- front matter ------------------------------------------------------------------------------


def _add(text: str, entry: str, lb: str) -> list[str]:
    """A new key goes at the end; at the start as well, for when the end changes a value (a block scalar
    that ended the front matter without a line break would gain one)."""
    if not text:
        return [entry]
    at_end = text + entry if text.endswith(("\n", "\r")) else text + lb + entry
    return [at_end, entry + lb + text]


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def splice_model_index(yaml_text: str, entry: str, lb: str, where: str, first_line: int = 1) -> list[str]:
    """`yaml_text` with its top-level `model-index` key (the key's line through the last line of its value)
    replaced by `entry`, or with `entry` added when there is none; blank and comment lines after the value
    are kept. Candidates in order of preference (the caller keeps the first that reads back right); none
    when the front matter is not a block mapping with keys in column 0.
    """
    import yaml

    root = yaml.compose(yaml_text)  # the caller has already parsed this text, so it is valid YAML
    if root is None:  # empty, or only comments
        return _add(yaml_text, entry, lb)
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        return []
    keys = [key for key, _ in root.value]
    if any(key.start_mark.column != 0 for key in keys):
        return []
    hits = [i for i, k in enumerate(keys) if isinstance(k, yaml.ScalarNode) and k.value == MODEL_INDEX_KEY]
    if len(hits) > 1:
        at = ", ".join(str(first_line + keys[i].start_mark.line) for i in hits)
        raise CardError(
            f"{where}: the front matter has {len(hits)} `{MODEL_INDEX_KEY}` keys (lines {at}); "
            "YAML keeps only the last, so merge them into one"
        )
    if not hits:
        return _add(yaml_text, entry, lb)
    i = hits[0]
    start = keys[i].start_mark.index
    end = keys[i + 1].start_mark.index if i + 1 < len(keys) else len(yaml_text)
    lines = _LINE.findall(yaml_text[start:end])
    kept: list[str] = []  # blank and comment lines between the value and the next key are not ours
    while len(lines) > 1 and _is_blank_or_comment(lines[-1]):
        kept.insert(0, lines.pop())
    m = LINE_BREAK.search(lines[-1])
    replacement = entry + (m.group() if m else "")
    return [yaml_text[:start] + replacement + "".join(kept) + yaml_text[end:]]


# --- body --------------------------------------------------------------------------------------


def body_lines(text: str) -> Iterator[tuple[int, int, str, bool]]:
    """(start, end including the line break, the line's text, inside a fenced code block)."""
    fence: str | None = None
    pos = 0
    for line in _LINE.findall(text):
        content = line.rstrip("\r\n")
        m = _FENCE.match(content)
        if fence is None and m:
            fence = m.group(1)
            yield pos, pos + len(line), content, True
        elif fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not content[m.end() :].strip():
                fence = None
            yield pos, pos + len(line), content, True
        else:
            yield pos, pos + len(line), content, False
        pos += len(line)


def put_block(body: str, section: str, lb: str, where: str, replace: tuple[int, int] | None = None) -> str:
    """`body` with the marker block holding `section` (lines ending "\\n") replaced; without one, put in
    place of `body[replace[0]:replace[1]]` (the leaderboard bot's section), else inserted after the first
    heading (at the end when there is none). Nothing outside the block changes, except that a line break
    is added after a last line that has none when the block goes after it; a block that ends the card
    without a line break keeps ending without one.
    """
    block = lb.join([START_MARKER, *section.rstrip("\n").split("\n"), "", END_MARKER]) + lb

    def in_place_of(start: int, end: int) -> str:
        ends_line = body[start:end].endswith(("\n", "\r"))  # only the card's last line may not
        return body[:start] + (block if ends_line else block[: -len(lb)]) + body[end:]

    lines = list(body_lines(body))
    # Markers count anywhere (a block appended after an unclosed code fence must still be found);
    # headings only outside code.
    starts = [ln for ln in lines if ln[2].strip() == START_MARKER]
    ends = [ln for ln in lines if ln[2].strip() == END_MARKER]
    if starts or ends:
        if len(starts) != 1 or len(ends) != 1 or ends[0][0] < starts[0][0]:
            raise CardError(
                f"{where}: found {len(starts)} `{START_MARKER}` and {len(ends)} `{END_MARKER}` lines; "
                "evalsuite needs exactly one of each, start before end: delete the stray marker lines"
            )
        return in_place_of(starts[0][0], ends[0][1])
    if replace is not None:
        return in_place_of(*replace)
    heading = next((ln for ln in lines if not ln[3] and _ATX_HEADING.match(ln[2])), None)
    at = heading[1] if heading else len(body)
    before = body[:at]
    if before and not before.endswith(("\n", "\r")):
        before += lb
    return before + block + body[at:]
