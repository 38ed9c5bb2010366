"""Reduced-precision float formats, as v1's arithmetic meets them: a log-likelihood v1 computed in bfloat16
or float16 is a number of that format, and the format's spacing at its magnitude is the smallest
difference it shows. The tolerance policy (evalsuite.fidelity.tolerance) and the fast backend's near-tie
check (evalsuite.engine.fast.ties) read the same table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Precision:
    name: str
    significant_bits: int  # the implicit leading bit included: bfloat16 8, float16 11
    # How many spacings at the value a log-likelihood may move between two faithful computations: one for
    # the final rounding, the rest for the rounding inside the model (measured: up to 2 bfloat16 and 9
    # float16 spacings at batch size 8 or with a cached prefix), rounded up to a power of two for another
    # machine's kernels (bench/RESULTS.md, "Reduced precision").
    spacings: int

    def spacing(self, value: float) -> float:
        """The distance between neighbouring numbers of the format at |value|, taken as at least 1 (a
        log-probability is a difference of logits of magnitude one or more, whose rounding reaches it)."""
        exponent = math.frexp(max(abs(value), 1.0))[1] - 1  # floor(log2 |value|)
        return math.ldexp(1.0, exponent - (self.significant_bits - 1))

    def epsilon(self, value: float) -> float:
        """How far a log-likelihood of this value may move: `spacings` spacings at it."""
        return self.spacings * self.spacing(value)


PRECISIONS: Mapping[str, Precision] = {
    "bfloat16": Precision("bfloat16", 8, spacings=4),
    "float16": Precision("float16", 11, spacings=16),
}


def reduced_precision(dtype: object) -> Precision | None:
    """The format of a dtype (`torch.bfloat16` or its name), None for float32 and anything unknown."""
    return PRECISIONS.get(str(dtype).removeprefix("torch."))
