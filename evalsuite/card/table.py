"""The leaderboard's results section of a model-card body (spec model-card.md §1.2): render and read it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from evalsuite.paths import link_target, link_text

# The heading the leaderboard PR bot wrote; evalsuite runs the same v1 protocol, so it keeps the form.
HEADING = (
    "# [Open LLM Leaderboard Evaluation Results](https://huggingface.co/spaces/HuggingFaceH4/open_llm_leaderboard)"
)
DETAILS = "Detailed results can be found [here]({url})"
DETAILS_SEVERAL = "Detailed results can be found in the runs {links}"
METRIC_HEADER = "Metric"
VALUE_HEADER = "Value"
AVERAGE_ROW = "Avg."

# `|HellaSwag (10-Shot)              |88.31|`, also with the padding lost (`|HellaSwag (10-Shot) |88.31|`).
_ROW = re.compile(r"^\s*\|\s*(?P<name>[^|]*?)\s*\|\s*(?P<value>[^|]*?)\s*\|\s*$")


def _center(text: str, width: int) -> str:
    # The bot's table writer puts the odd space on the right (`|             Metric              |`);
    # str.center would put it on the left.
    left = (width - len(text)) // 2
    return " " * left + text + " " * (width - len(text) - left)


def render_table(rows: Sequence[tuple[str, float]]) -> list[str]:
    """The `|  Metric  |Value|` table lines: names left-aligned, values right-aligned with 2 decimals.

    Columns are as wide as their widest cell, as the bot's writer made them (33 for the ARC title).
    """
    cells = [(name, f"{value:.2f}") for name, value in rows]
    name_w = max([len(METRIC_HEADER), *(len(n) for n, _ in cells)])
    value_w = max([len(VALUE_HEADER), *(len(v) for _, v in cells)])
    lines = [
        f"|{_center(METRIC_HEADER, name_w)}|{_center(VALUE_HEADER, value_w)}|",
        f"|{'-' * name_w}|{'-' * (value_w - 1)}:|",
    ]
    lines += [f"|{name:<{name_w}}|{value:>{value_w}}|" for name, value in cells]
    return lines


def details_line(urls: Sequence[str]) -> str:
    """One run: the bot's `Detailed results can be found [here](url)`; several runs: one link per run.
    `urls` are URLs or paths as they are; each becomes a valid Markdown link (spaces and all)."""
    if len(urls) == 1:
        return DETAILS.format(url=link_target(urls[0]))
    links = ", ".join(f"[{link_text(url.rstrip('/').rsplit('/', 1)[-1] or url)}]({link_target(url)})" for url in urls)
    return DETAILS_SEVERAL.format(links=links)


def render_section(
    percents: Mapping[str, float],
    average: float | None,
    details: Sequence[str],
    notes: Iterable[str] = (),
) -> str:
    """The whole section: heading, details line, blank line, table (`Avg.` first when given), then any notes.

    `percents` maps each row's display name to its value in percent, in the order the rows are shown.
    Lines end with "\\n"; the caller converts them to the card's line break.
    """
    rows = ([(AVERAGE_ROW, average)] if average is not None else []) + list(percents.items())
    lines = [HEADING, details_line(details), "", *render_table(rows)]
    notes = list(notes)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def read_table(text: str, names: Iterable[str]) -> dict[str, str]:
    """The value cell of every table row whose first cell is one of `names` (first occurrence wins).

    Padding is not required, so a scraped copy whose table lost its spaces still reads.
    """
    wanted = set(names)
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m and m["name"] in wanted and m["name"] not in found:
            found[m["name"]] = m["value"]
    return found
