"""`evalsuite card`: write or update a model card from runs, or read a card's published results."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

DESCRIPTION = """\
Write the model-card metadata (model-index) and the leaderboard's results table for runs of one model.

Where the card goes:
  (default)        write or update README.md in the run directory (the newest run's, when several)
  --update CARD    update an existing card in place (previous version kept as CARD.bak): only
                   evalsuite's six results and the table between its marker comments change (the
                   first time, the leaderboard bot's results section is replaced where it is);
                   running it again with the same runs changes nothing
  --output PATH    write a new card at PATH (refuses to overwrite); '-' prints it
  --push REPO_ID   open a pull request with the card on the Hub; the card is --update CARD when
                   given, else the repo's current README.md updated the same way

--update and --push refuse smoke runs (--limit, the demo) and runs without all six over a card's
published values; --allow-smoke lets them in, marked in the model-index (metric args `smoke: true`).

Reading a card instead (a file, or a Hub model's card by its id):
  evalsuite card --from-card README.md [--json]
  evalsuite card --from-card owner/name [--json]
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "card",
        help="write or update a model card with the six results; read a card's published results",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="run directories of one model (newest result per benchmark wins)",
    )
    dest = p.add_mutually_exclusive_group()
    dest.add_argument("--update", metavar="CARD", help="existing README.md to update in place")
    dest.add_argument("--output", "-o", metavar="PATH", help="new card to write ('-': print it)")
    p.add_argument("--source-url", help="url of each result's model-index `source` (default: the run's link)")
    p.add_argument("--source-name", help="name of each result's source (default: 'evalsuite <version> run <run>')")
    p.add_argument("--details-url", help="link of the details line (default: the run directory, relative)")
    p.add_argument("--model-name", help="name in model-index (default: the card's own, else the model's bare name)")
    p.add_argument("--push", metavar="REPO_ID", help="open a pull request with the card on this Hub model repo")
    p.add_argument(
        "--from-card",
        metavar="CARD",
        help="read the published results of this card (a README.md, or a Hub model id) instead (no RUN)",
    )
    p.add_argument("--json", action="store_true", help="with --from-card: print the results as JSON")
    p.add_argument(
        "--allow-smoke",
        action="store_true",
        help="let --update/--push write smoke (--limit, demo) or partial runs; their values are marked",
    )
    p.set_defaults(func=cmd_card)


def _from_card(args: argparse.Namespace) -> int:
    from evalsuite.card.hub import read_hub_card
    from evalsuite.card.read import read_card
    from evalsuite.card.update import render_card_results
    from evalsuite.errors import ConfigError
    from evalsuite.naming import is_local_path

    if args.runs or args.update or args.output or args.push:
        raise ConfigError("--from-card reads a card: give no RUN, --update, --output or --push with it")
    ref = args.from_card
    # owner/name that is no file here is a Hub model (a card file's name ends in .md)
    hub_id = not is_local_path(ref) and ref.count("/") == 1 and not ref.lower().endswith(".md")
    run = read_hub_card(ref) if hub_id else read_card(ref)
    if args.json:
        print(json.dumps(run.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(render_card_results(run, args.from_card), end="")
    return 0


def _write_card(args: argparse.Namespace) -> int:
    from evalsuite.card.backup import backup_path
    from evalsuite.card.hub import push_card
    from evalsuite.card.hub_eval_results import write_files
    from evalsuite.card.publish import CardRequest, plan_card, write_card
    from evalsuite.errors import ConfigError
    from evalsuite.fsio import resolve_link

    if args.json:
        raise ConfigError("--json goes with --from-card")
    request = CardRequest(
        runs=tuple(args.runs),
        update=Path(args.update) if args.update else None,
        output=Path(args.output) if args.output and args.output != "-" else None,
        to_stdout=args.output == "-",
        push=args.push,
        source_url=args.source_url,
        source_name=args.source_name,
        details_url=args.details_url,
        model_name=args.model_name,
        allow_smoke=args.allow_smoke,
    )
    plan = plan_card(request)
    if args.push:
        url = push_card(plan.text, args.push, plan.eval_results, plan.hub_commit)
        print(f"pull request opened: {url} (README.md{''.join(', ' + p for p in plan.eval_results)})")
    if plan.target is None:
        if not args.push:
            sys.stdout.write(plan.text)
        return 0
    status = write_card(plan.target, plan.text)
    backup = f" (previous version in {backup_path(resolve_link(plan.target))})" if status == "updated" else ""
    print(f"card {status}: {plan.target}{backup}")
    written = write_files(plan.target.parent, plan.eval_results)
    if written:
        print(f"eval results written beside it: {', '.join(written)}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from evalsuite.card.read import CardWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CardWarning)
        try:
            return _from_card(args) if args.from_card else _write_card(args)
        finally:
            for w in caught:
                if issubclass(w.category, CardWarning):
                    print(f"warning: {w.message}", file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
