"""Read a model card: its front matter as huggingface_hub reads it (errors say where), and its published
leaderboard scores as the typed results the rest of evalsuite uses."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from evalsuite.benchmarks.spec import BenchmarkSpec
from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.card.bot import V1_ROWS, find_sections, first_body_line, several_sections
from evalsuite.card.splice import CardParts, split_card
from evalsuite.card.table import AVERAGE_ROW, read_table
from evalsuite.errors import CardError
from evalsuite.results import BenchmarkScore, ModelInfo, Provenance, RunResult

if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

# Every leaderboard entry has this task (spec model-card.md §1.2).
TASK_TYPE = "text-generation"
TASK_NAME = "Text Generation"
# evalsuite's mark on a smoke-run value: the metric's `args` in the model-index (`{smoke: true, limit: 3}`).
SMOKE_ARG = "smoke"
LIMIT_ARG = "limit"
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


class CardWarning(UserWarning):
    """Worth telling the user (a smoke run, a missing benchmark, a card read from its table), not an error."""


def warn(message: str) -> None:
    warnings.warn(message, CardWarning, stacklevel=3)


def spec_of(result: EvalResult) -> BenchmarkSpec | None:
    """The benchmark a card result reports: same task, metric and few-shot count, and the same dataset
    (type/config/split, or the leaderboard's display name). None for anything else, which is left alone."""
    for spec in BENCHMARKS:
        args = result.dataset_args if isinstance(result.dataset_args, dict) else {}
        shots = args.get("num_few_shot", spec.num_fewshot)
        same_dataset = (result.dataset_type, result.dataset_config, result.dataset_split) == (
            spec.card.dataset_type,
            spec.card.config,
            spec.card.split,
        )
        if (
            result.task_type == TASK_TYPE
            and result.metric_type == spec.metric
            and shots == spec.num_fewshot
            and (same_dataset or result.dataset_name == spec.title)
        ):
            return spec
    return None


def read_text(path: Path, fix: str) -> str:
    if not path.is_file():
        raise CardError(f"{path}: no such card file; {fix}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CardError(f"{path}: not UTF-8 text (byte {exc.start}); save the card as UTF-8") from None


def model_data(card: ModelCard) -> ModelCardData:
    return cast("ModelCardData", card.data)


def parse_card(parts: CardParts, where: str) -> ModelCard:
    """The card as huggingface_hub reads it; bad YAML or a bad model-index is a CardError saying where."""
    import yaml
    from huggingface_hub import ModelCard

    assert parts.yaml is not None
    try:
        return ModelCard(parts.join(parts.yaml, parts.body)[len(parts.bom) :])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {parts.yaml_first_line + mark.line}, column {mark.column + 1}" if mark else ""
        raise CardError(f"{where}: the YAML front matter is broken{at}: {exc.problem}; fix it there") from None
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, KeyError) as exc:
        # ModelCardData(**front_matter): keys must be text, and the values of known keys of the known types
        keys = yaml.safe_load(parts.yaml)
        odd = [k for k in keys if not isinstance(k, str)] if isinstance(keys, dict) else []
        if odd:
            raise CardError(
                f"{where}: front-matter keys {odd!r} are not text (YAML reads unquoted on/yes/no/1 as "
                'true/false/numbers); quote them, e.g. "on":'
            ) from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CardError(f"{where}: huggingface_hub cannot read the front matter ({first}); fix it") from None


def no_front_matter(parts: CardParts) -> str:
    """Says there is none, and why when a `---` line further down suggests a damaged card."""
    dashes = [i for i, ln in enumerate(parts.body.splitlines(), 1) if ln.strip() == "---"]
    hint = f" (the '---' at line {dashes[0]} is not on line 1, so it does not start one)" if dashes else ""
    return f"no YAML front matter at the top{hint}"


def parse_percent(value: Any, where: str, title: str) -> float:
    number = value
    if isinstance(value, str):  # "72.01" or "72.01 ± 0.45"
        try:
            number = float(value.split("±")[0].strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or math.isnan(number):
        raise CardError(f"{where}: {title} has value {value!r}, not a number; write a percentage like 72.01")
    if not 0.0 <= number <= 100.0:
        raise CardError(f"{where}: {title} is {value!r}, outside 0..100; card values are percentages, fix it")
    return float(number)


def _fraction(percent: float) -> float:
    return float(Decimal(repr(percent)) / 100)


def _number(cell: str | None) -> float | None:
    try:
        return float(cell) if cell is not None else None
    except ValueError:
        return None


def _check_table(values: Mapping[str, float], rows: Mapping[str, str], disagree: str) -> None:
    """Warn about every row of a body table that differs from `values` (percent), Avg. included."""
    diffs = []
    for spec in BENCHMARKS:
        cell = _number(rows.get(spec.title))
        if cell is not None and spec.name in values and abs(cell - values[spec.name]) >= 0.005:
            diffs.append(f"{spec.title} {values[spec.name]} vs {cell}")
    average = _number(rows.get(AVERAGE_ROW))
    if average is not None and len(values) == len(BENCHMARKS):
        mean = sum(values.values()) / len(values)
        # The table's Avg. is the rounded mean of unrounded scores: within 0.01 of the mean of rounded ones.
        if abs(average - mean) > 0.01 + 1e-9:
            diffs.append(f"{AVERAGE_ROW} {mean:.2f} vs {average}")
    if diffs:
        warn(f"{disagree}: {'; '.join(diffs)}")


def _first_heading(body: str) -> str | None:
    """The card's title: its first `# ` heading other than the leaderboard's, links reduced to their text."""
    for line in body.splitlines():
        if line.startswith("# ") and "Open LLM Leaderboard" not in line:
            return _LINK.sub(r"\1", line[2:]).strip() or None
    return None


def read_card(path: str | Path) -> RunResult:
    """A card file's published leaderboard scores as a RunResult (see card_result)."""
    path = Path(path)
    text = read_text(path, "pass the README.md of a model")
    return card_result(text, str(path), path.parent.name if path.stem == "README" else path.stem, path)


def card_result(text: str, where: str, fallback_name: str, path: Path | None = None) -> RunResult:
    """A card's published leaderboard scores as a RunResult (fractions; provenance.source == "card").

    Reads the model-index; a card without front matter, or whose model-index has none of the six,
    is read from its results table, with a CardWarning. Broken YAML or values outside 0..100 are a CardError.
    The model is the model-index's name, else the card's first heading, else `fallback_name`.
    """
    parts = split_card(text)
    body_line = first_body_line(parts)
    sections = [s for s in find_sections(parts.body) if s.is_v1]
    tables = [(f" (line {body_line + s.line - 1})", dict(s.rows)) for s in sections]
    if not tables:  # a results table without the leaderboard's heading
        tables = [("", read_table(parts.body, list(V1_ROWS)))]
    table = tables[0][1]
    several = several_sections(parts.body, where, body_line)
    if several:
        warn(several)
    values: dict[str, float] = {}
    smoke: dict[str, int | None] = {}  # benchmark -> limit, for the values marked as smoke-run ones
    name = None
    if parts.yaml is None:
        warn(f"{where}: {no_front_matter(parts)}; reading the results table in the body")
    else:
        data = model_data(parse_card(parts, where))
        name = data.model_name
        for spec in BENCHMARKS:
            found = [r for r in data.eval_results or [] if spec_of(r) is spec]
            if found:
                values[spec.name] = parse_percent(found[0].metric_value, where, spec.title)
                args = found[0].metric_args if isinstance(found[0].metric_args, dict) else {}
                if args.get(SMOKE_ARG) is True:
                    smoke[spec.name] = args.get(LIMIT_ARG)
            if len(found) > 1:
                warn(f"{where}: model-index has {len(found)} results for {spec.title}; using the first")
        if not values:
            warn(f"{where}: the model-index has none of the six benchmarks; reading the body's results table")
    if values:
        for at, rows in tables:
            _check_table(values, rows, f"{where}: the model-index and the results table{at} disagree")
    else:
        values = {s.name: parse_percent(table[s.title], where, s.title) for s in BENCHMARKS if s.title in table}
        for at, rows in tables[1:]:
            _check_table(values, rows, f"{where}: the results tables{tables[0][0]} and{at} disagree")
    if smoke:
        titles = ", ".join(spec.title for spec in BENCHMARKS if spec.name in smoke)
        warn(f"{where}: {titles} marked as smoke-run values (subsets of the documents), not leaderboard scores")
    if not values:
        raise CardError(
            f"{where}: no Open LLM Leaderboard results in the model-index or a results table; "
            "pass a card with them (e.g. one the leaderboard bot or `evalsuite card` wrote)"
        )
    scores = {
        # Decimal: 72.01 -> 0.7201, not 0.7201000000000001
        spec.name: BenchmarkScore(spec.name, spec.metric, _fraction(values[spec.name]), num_fewshot=spec.num_fewshot)
        for spec in BENCHMARKS
        if spec.name in values
    }
    model = name or _first_heading(parts.body) or fallback_name
    limits = {limit for limit in smoke.values() if isinstance(limit, int)}
    return RunResult(
        model=ModelInfo(id=model or where),
        scores=scores,
        provenance=Provenance(
            data_source=where, source="card", smoke=bool(smoke), limit=max(limits) if limits else None
        ),
        path=path,
        extra={"smoke_benchmarks": [name for name in scores if name in smoke]} if smoke else {},
    )
