"""The results section the Open LLM Leaderboard's bot appended to model cards (spec model-card.md §1.2):
where it is in a card's body, so that evalsuite's section replaces it in place instead of adding a second.

The bot wrote a heading (`# [Open LLM Leaderboard Evaluation Results](...)`; edited cards drop the link or
change the level), a `Detailed results can be found [here](...)` line and the padded table; copies
scraped from the Hub lose the padding and the blank line. Headings inside code blocks do not count.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.card.splice import END_MARKER, LINE_BREAK, START_MARKER, CardParts, body_lines
from evalsuite.card.table import AVERAGE_ROW, read_table
from evalsuite.errors import CardError

_HEADING = re.compile(
    r"^ {0,3}#{1,6}[ \t]+\[?[ \t]*Open LLM Leaderboard Evaluation Results[ \t]*(?:\]\([^)]*\))?[ \t]*#*[ \t]*$",
    re.IGNORECASE,
)
# Lines the bot put between its heading and its table.
_LEAD_IN = re.compile(r"^\s*(?:(?:Detailed|Summarized) results can be found\b.*)?$", re.IGNORECASE)
_TABLE_LINE = re.compile(r"^ {0,3}\|")
V1_ROWS = (AVERAGE_ROW, *(spec.title for spec in BENCHMARKS))


@dataclass(frozen=True)
class ResultsSection:
    """One leaderboard results heading in a card body, with the table under it (if any)."""

    start: int  # offset in the body of the heading line
    end: int  # offset after the table's last line, its line break included (after the heading without a table)
    line: int  # 1-based line of the heading in the body
    has_table: bool
    ours: bool  # inside evalsuite's marker block
    rows: Mapping[str, str] = field(default_factory=dict)  # value cell of each v1 row (Avg. and the six)

    @property
    def is_v1(self) -> bool:
        """Has the v1 leaderboard's table (a v2 section has other benchmarks: not ours to replace)."""
        return any(title in self.rows for title in V1_ROWS[1:])


def find_sections(body: str) -> list[ResultsSection]:
    """Every leaderboard results heading outside code blocks, in order."""
    lines = list(body_lines(body))
    ours = _marker_lines(lines)
    sections = []
    for i, (start, end, text, in_code) in enumerate(lines):
        if in_code or not _HEADING.match(text):
            continue
        j = i + 1
        while j < len(lines) and not lines[j][3] and _LEAD_IN.match(lines[j][2]) and not _HEADING.match(lines[j][2]):
            j += 1
        k = j
        while k < len(lines) and not lines[k][3] and _TABLE_LINE.match(lines[k][2]):
            k += 1
        table = "".join(body[ln[0] : ln[1]] for ln in lines[j:k])
        sections.append(
            ResultsSection(
                start=start,
                end=lines[k - 1][1] if k > j else end,
                line=i + 1,
                has_table=k > j,
                ours=i in ours,
                rows=read_table(table, V1_ROWS),
            )
        )
    return sections


def _marker_lines(lines: list[tuple[int, int, str, bool]]) -> set[int]:
    """Indices of the lines from each start marker to the next end marker."""
    inside, out = False, set()
    for i, ln in enumerate(lines):
        if ln[2].strip() == START_MARKER:
            inside = True
        if inside:
            out.add(i)
        if ln[2].strip() == END_MARKER:
            inside = False
    return out


def has_markers(body: str) -> bool:
    return any(ln[2].strip() in (START_MARKER, END_MARKER) for ln in body_lines(body))


def first_body_line(parts: CardParts) -> int:
    """The line of the file where the body starts, for messages that name body lines."""
    head = parts.join(parts.yaml, "") if parts.yaml is not None else parts.bom
    return len(LINE_BREAK.findall(head)) + 1


def span_to_replace(body: str, where: str, first_line: int = 1) -> tuple[int, int] | None:
    """The bot's section that evalsuite's section takes the place of: with several, the last (the bot
    appended its section at the end of the card). None when the card has evalsuite's markers (they say
    where) or no such section. A leaderboard heading whose table cannot be recognised is a CardError:
    replacing it could drop the user's text, and adding a section would give the card two."""
    if has_markers(body):
        return None
    sections = [s for s in find_sections(body) if not s.ours]
    v1 = [s for s in sections if s.is_v1]
    if v1:
        return v1[-1].start, v1[-1].end
    bare = [s for s in sections if not s.has_table]
    if bare:
        raise CardError(
            f"{where}: line {first_line + bare[0].line - 1} has the heading of the leaderboard's results section "
            "but no results table under it, so evalsuite cannot tell what to replace; delete the heading, or put "
            f"`{START_MARKER}` and `{END_MARKER}` lines around the part evalsuite may replace"
        )
    return None


def several_sections(body: str, where: str, first_line: int = 1) -> str | None:
    """A warning when the body has more than one v1 results section (or bare heading), else None."""
    sections = [s for s in find_sections(body) if s.is_v1 or not s.has_table]
    if len(sections) < 2:
        return None
    at = ", ".join(str(first_line + s.line - 1) for s in sections)
    mine = next((s for s in sections if s.ours), None)
    kept = f"evalsuite's is the one at line {first_line + mine.line - 1}" if mine else "the first is read"
    return (
        f"{where}: the card has {len(sections)} Open LLM Leaderboard results sections (lines {at}); {kept}: "
        "delete the others, they may show other numbers"
    )
