"""Where a card goes and what it holds: the runs merged, the base card read (local file, Hub or none),
updated, then written in place, to a new file, or handed back for printing or a pull request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from evalsuite.card import hub_eval_results as eval_results
from evalsuite.card.backup import replace_keeping_old
from evalsuite.card.guard import check_writable, refuse_other_model, refuse_partial, refuse_smoke
from evalsuite.card.hub import fetch_hub_card
from evalsuite.card.read import read_text, warn
from evalsuite.card.source import origins_of
from evalsuite.card.update import merge_runs, update_card_text
from evalsuite.errors import ConfigError, OutputExistsError
from evalsuite.fsio import resolve_link
from evalsuite.paths import public_url
from evalsuite.results import RESULTS_FILE, RunResult, load_run


@dataclass(frozen=True, kw_only=True)
class CardRequest:
    """What `evalsuite card` was asked for (every option there, typed)."""

    runs: tuple[str, ...]  # run directories of one model; the newest result per benchmark wins
    update: Path | None = None  # an existing card to update in place
    output: Path | None = None  # a new card to write (refuses to overwrite)
    to_stdout: bool = False  # hand the card back for printing instead of writing it
    push: str | None = None  # a Hub repo id to open a pull request on
    source_url: str | None = None
    source_name: str | None = None
    details_url: str | None = None
    model_name: str | None = None
    allow_smoke: bool = False  # let --update/--push write smoke or partial runs, marked in the model-index


@dataclass(frozen=True)
class CardPlan:
    """The updated card text and where it goes: `target` None means print it or push it. `eval_results`:
    the .eval_results files that go beside the card (path relative to the card's directory -> text), merged
    with those already there (beside the card, or in the Hub repo for --push without --update);
    `hub_commit`: the Hub commit the pushed card was made from."""

    text: str
    target: Path | None
    eval_results: Mapping[str, str] = field(default_factory=dict)
    hub_commit: str | None = None


def write_card(path: Path, text: str) -> str:
    """Write atomically, an existing card first copied to `<card>.bak` (and the first time to `<card>.orig`);
    returns created/updated/unchanged. A read-only card is a CardError. A card that is a symbolic link
    stays one: its target is written."""
    path = resolve_link(path)
    check_writable(path)
    existed = path.exists()
    if not replace_keeping_old(path, text):
        return "unchanged"
    return "updated" if existed else "created"


def _link(run: RunResult, card_dir: Path) -> str:
    """The run directory relative to the card; its results.json for a card inside it."""
    if run.path is None:
        return RESULTS_FILE
    try:
        rel = Path(os.path.relpath(run.path.resolve(), card_dir.resolve())).as_posix()
    except ValueError:  # another drive
        return run.path.resolve().as_posix()
    return RESULTS_FILE if rel == "." else rel


def _published(url: str | None, option: str) -> str | None:
    """A URL the card will show, without credentials (a card is public): said when some were taken out."""
    if url is None:
        return None
    public = public_url(url)
    if public != url:
        warn(f"{option}: the credentials in the URL are left out of the card ({public})")
    return public


def plan_card(req: CardRequest) -> CardPlan:
    """The card text for the request and its target; nothing is written (bad input fails here)."""
    req = replace(
        req,
        source_url=_published(req.source_url, "--source-url"),
        details_url=_published(req.details_url, "--details-url"),
    )
    if not req.runs:
        raise ConfigError("give one or more run directories (or --from-card CARD to read a card)")
    run, origins = merge_runs([load_run(r) for r in req.runs])
    target: Path | None
    if req.update:
        target = req.update
        base = read_text(target, "to write a new card use --output PATH")
    elif req.output or req.to_stdout:
        target = req.output
        if target is not None and target.exists():
            raise OutputExistsError(f"--output {target}: already exists; use --update {target} to update it")
        base = None
    elif req.push:
        target, base = None, None
    else:
        assert run.path is not None  # loaded from a run directory
        target = run.path / "README.md"
        base = read_text(target, "") if target.exists() else None
    where = str(target) if target else (f"README.md of {req.push}" if req.push else "the new card")
    if req.update:
        check_writable(req.update)
    if req.update or req.push:
        refuse_smoke(run, where, req.allow_smoke)
    hub = fetch_hub_card(req.push) if req.push and not req.update else None
    if hub is not None:
        base = hub.text
    if req.push and not req.details_url:
        warn(
            "--push without --details-url: the details line (and each result's source, without --source-url) "
            "links a local run directory, unknown on the Hub"
        )
    card_dir = target.parent if target is not None else Path.cwd()
    runs = sorted({id(r): r for r in origins.values()}.values(), key=lambda r: r.provenance.finished_at)
    details = [req.details_url] if req.details_url else [_link(r, card_dir) for r in runs]
    if req.update or req.push:
        refuse_partial(run, base, where, req.allow_smoke)
        refuse_other_model(run, base, where, req.model_name)
    sources = origins_of(origins, lambda r: _link(r, card_dir), req.source_url or req.details_url, req.source_name)
    text = update_card_text(base, run, details=details, model_name=req.model_name, where=where, origins=sources)
    results: dict[str, str] = {}
    if req.update or req.push or not (req.output or req.to_stdout):  # the card of a model repo (or a run)
        paths = list(eval_results.entries(origins, sources))
        existing = {p: hub.read(p) for p in paths} if hub is not None else eval_results.read_local(card_dir, paths)
        where = f"{hub.repo_id} on the Hub: " if hub is not None else f"{card_dir}{os.sep}"
        results = eval_results.files_for(origins, sources, existing, where=where)
    return CardPlan(text, target, results, hub.commit if hub is not None else None)
