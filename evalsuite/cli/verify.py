"""`evalsuite verify`: check a run against a reference; the comparison itself is evalsuite.fidelity.verify."""

from __future__ import annotations

import argparse
import json

from evalsuite.cli.argtypes import tolerance
from evalsuite.fidelity import DEFAULT_EPSILON


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check a run against a reference under the tolerance policy (exit 1 when it differs)",
        description="Compare a run with a reference directory, document by document: texts byte-identical, "
        "log-likelihoods within the tolerance, 0/1 metrics identical except near-ties of the reference, mc2 and "
        "the scores within the bound the tolerance implies. The tolerance follows the dtype both runs computed in "
        "(float32: 1e-4 nats; bfloat16: 4, float16: 16 spacings of the format at each value); --tol fixes it. "
        "The reference is another run directory or a directory in the golden format (scores.json + "
        "samples/<v1 task>.jsonl). Exit status 0: the same result; 1: it differs.",
    )
    p.add_argument("run", metavar="RUN", help="the run directory to check")
    p.add_argument("--against", required=True, metavar="DIR", help="the reference: a run or golden-format directory")
    p.add_argument(
        "--tol",
        type=tolerance,
        default=None,
        metavar="EPS",
        help=f"a fixed log-likelihood tolerance in nats; 0 demands identical bits (default: from the dtypes the "
        f"two runs record: {DEFAULT_EPSILON:g} in float32; 4 bfloat16 or 16 float16 spacings at the value)",
    )
    p.add_argument(
        "--subset",
        action="store_true",
        help="check only the reference documents the run has (a --limit run); their scores are recomputed on "
        "those documents and the others listed as left out",
    )
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from evalsuite.fidelity.tolerance import Tolerance
    from evalsuite.fidelity.verify import format_report, verify

    report = verify(args.run, args.against, None if args.tol is None else Tolerance(args.tol), subset=args.subset)
    print(json.dumps(report.to_dict(), indent=1) if args.json else format_report(report), end="\n" if args.json else "")
    return 0 if report.ok else 1
