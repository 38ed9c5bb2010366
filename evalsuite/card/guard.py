"""What may go into a card: runs of one model only, no smoke or partial numbers over published ones
unless asked, and never a card the user made read-only."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from evalsuite.benchmarks.table import BENCHMARKS
from evalsuite.card.read import model_data, parse_card, spec_of
from evalsuite.card.splice import split_card
from evalsuite.errors import CardError
from evalsuite.results import RunResult


def model_identity(run: RunResult) -> tuple[object, ...] | None:
    """What makes two runs the same model: the Hub id and commit, or the local directory and the sha256 of
    its weight files. None when a local run recorded no weight hashes (made before evalsuite kept them)."""
    model = run.model
    if model.commit:
        return ("hub", model.id, model.commit)
    if not model.weights_sha256:
        return None
    return ("local", os.path.normpath(os.path.expanduser(model.id)), tuple(sorted(model.weights_sha256.items())))


def _describe(run: RunResult) -> str:
    model = run.model
    if model.commit:
        what = f"{model.id} at commit {model.commit[:12]}"
    elif model.weights_sha256:
        weights = ", ".join(f"{name} {digest[:12]}" for name, digest in sorted(model.weights_sha256.items()))
        what = f"{model.id} (weights {weights})"
    else:
        what = f"{model.id} (no weight hashes recorded)"
    return f"{what} in {run.path}" if run.path else what


def check_same_model(runs: Sequence[RunResult]) -> None:
    """A one-line CardError naming the first two runs that are not provably of the same model."""
    first = runs[0]
    for other in runs[1:]:
        a, b = model_identity(first), model_identity(other)
        if a is None or b is None:
            raise CardError(
                f"cannot tell that the runs are of the same model: {_describe(first)} and {_describe(other)}; "
                "local runs need their weight hashes: re-run the one without them with this evalsuite"
            )
        if a != b:
            raise CardError(
                f"the runs are of different models: {_describe(first)} and {_describe(other)}; "
                "a card holds one model's results: pass runs of one model (same Hub id and commit, "
                "or same directory and weights)"
            )


def published_titles(card_text: str | None, where: str) -> list[str]:
    """The leaderboard benchmarks the card's model-index already has values for."""
    parts = split_card(card_text or "")
    if parts.yaml is None:
        return []
    results = model_data(parse_card(parts, where)).eval_results or []
    found = {spec.name for r in results if (spec := spec_of(r))}
    return [spec.title for spec in BENCHMARKS if spec.name in found]


def refuse_smoke(run: RunResult, where: str, allow_smoke: bool) -> None:
    """Smoke-run scores (--limit, the demo) do not go into a published card (--update, --push) unless
    `allow_smoke`; checked before anything is fetched from the Hub."""
    if run.provenance.smoke and not allow_smoke:
        what = f"--limit {run.provenance.limit}: a subset of the documents" if run.provenance.limit else "the demo"
        raise CardError(
            f"{where}: refusing to put smoke-run scores ({what}) into the card; "
            "run the full evaluation (no --limit, not --demo), or pass --allow-smoke to write them into the card "
            "marked as such"
        )


def refuse_partial(run: RunResult, card_text: str | None, where: str, allow_smoke: bool) -> None:
    """A run without all six does not go into a card that publishes values unless `allow_smoke`: the card
    would show this run's values beside earlier ones from elsewhere, and no Avg."""
    published = published_titles(card_text, where)
    if run.missing and published and not allow_smoke:
        titles = ", ".join(spec.title for spec in BENCHMARKS if spec.name in run.missing)
        raise CardError(
            f"{where}: the run has no {titles} while the card publishes values for {len(published)} "
            f"benchmark{'s' if len(published) != 1 else ''}; evaluate all six, or pass --allow-smoke to write "
            "the partial run into the card marked as such"
        )


def refuse_other_model(run: RunResult, card_text: str | None, where: str, model_name: str | None) -> None:
    """A card whose model-index names another model than the run's is not updated unless `model_name`
    (--model-name) says which name the results go under: a local directory's name often differs from the
    Hub name, but publishing another model's numbers must be a decision, not a default."""
    from evalsuite.naming import card_model_name
    from evalsuite.paths import markdown_text

    parts = split_card(card_text or "")
    if parts.yaml is None or model_name:
        return
    card_name = model_data(parse_card(parts, where)).model_name
    run_name = card_model_name(run.model.id)
    if card_name and card_name not in (run_name, markdown_text(run_name)):
        raise CardError(
            f"{where}: the card's model-index is named {card_name!r} but the run is of {run_name!r}; "
            f"if the run is of that model, pass --model-name {card_name}"
        )


def check_writable(path: Path) -> None:
    """A card without write permission is refused, even where the directory would let us replace it."""
    if not path.exists():
        return
    mode = path.stat().st_mode
    if not os.access(path, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise CardError(
            f"{path}: the card is read-only; make it writable (chmod u+w {path}) to update it, "
            "or write a new card with --output PATH"
        )
