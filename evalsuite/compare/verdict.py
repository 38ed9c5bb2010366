"""The verdicts of a paired comparison, each with what it means: the report's legend is this table, so
every label the significance table can print is explained."""

from __future__ import annotations

from enum import StrEnum


class PairedVerdict(StrEnum):
    """Run b against run a on one benchmark, first match wins (so rounding is never called a difference)."""

    IDENTICAL = "identical"
    ROUNDING = "within rounding"
    DIFFERS = "differs"
    NOISE = "within noise"
    NO_TEST = "no paired test"


MEANINGS: dict[PairedVerdict, str] = {
    PairedVerdict.IDENTICAL: "every document's value and log-likelihoods (or generation) are the baseline's, bit for "
    "bit, and so is the score (e.g. a run and its resumed or repeated copy)",
    PairedVerdict.ROUNDING: "the documents differ only by float rounding, as `evalsuite verify` would call the same "
    "result: log-likelihoods within its tolerance, the same accuracies (flipped near-ties aside), mc2 "
    "within its bound and the same two-decimal score (in reduced precision mc2's may move within its "
    "bound; as between backends, devices or batch sizes on one model), whatever the interval says",
    PairedVerdict.DIFFERS: "more than rounding, and the interval excludes 0",
    PairedVerdict.NOISE: "more than rounding, but the interval includes 0: not significant on these documents "
    "(two models that score every document alike included)",
    PairedVerdict.NO_TEST: "the runs cannot be paired on this benchmark; the reason follows",
}


def decide(*, reason: str | None, identical: bool, within_rounding: bool, excludes_zero: bool) -> PairedVerdict:
    if reason is not None:
        return PairedVerdict.NO_TEST
    if identical:
        return PairedVerdict.IDENTICAL
    if within_rounding:
        return PairedVerdict.ROUNDING
    return PairedVerdict.DIFFERS if excludes_zero else PairedVerdict.NOISE


def legend() -> str:
    """One line per verdict, in the order they are decided."""
    return "".join(f"- '{v}': {MEANINGS[v]}.\n" for v in PairedVerdict)
