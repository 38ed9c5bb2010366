"""Reduced-precision float formats, as v1's arithmetic meets them: a log-likelihood v1 computed in bfloat16
or float16 is a number of that format, and the format's spacing at its magnitude is the smallest
difference it shows. The tolerance policy (evalsuite.fidelity.tolerance) and the fast backend's near-tie
check (evalsuite.engine.fast.ties) read the same table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# A log-probability is a logit minus the log of a sum of exponentials of logits, both of the logits'
# magnitude: their rounding reaches it however small it is. A trained model's top logits lie around 10
# to 30, so below this magnitude the spacing at it is taken. (The reference tiny models' logits are
# smaller: for them this only widens the bounds.)
LOGIT_MAGNITUDE = 16.0


@dataclass(frozen=True)
class Precision:
    name: str
    significant_bits: int  # the implicit leading bit included: bfloat16 8, float16 11
    # How many spacings at the value two faithful computations of one log-likelihood differed by, at
    # most, where the same inputs were computed in other shapes: the exact path at batch size 8, the fast
    # backend's cached prefixes (bench/RESULTS.md, "Reduced precision").
    noise_spacings: int
    # The tolerance: one spacing for the final rounding plus the noise, rounded up to a power of two for
    # another machine's kernels.
    spacings: int

    def spacing(self, value: float, at_least: float = LOGIT_MAGNITUDE) -> float:
        """The distance between neighbouring numbers of the format at |value|, taken as at least `at_least`."""
        exponent = math.frexp(max(abs(value), at_least, 1.0))[1] - 1  # floor(log2 |value|)
        return math.ldexp(1.0, exponent - (self.significant_bits - 1))

    def epsilon(self, value: float) -> float:
        """How far a log-likelihood of this value may move under the tolerance policy."""
        return self.spacings * self.spacing(value)

    def noise(self, value: float) -> float:
        """How far the measured rounding noise moved a log-likelihood of this value: in spacings at the
        value itself (at least 1), as measured on the reference models, whose logits are small."""
        return self.noise_spacings * self.spacing(value, at_least=1.0)


PRECISIONS: Mapping[str, Precision] = {
    "bfloat16": Precision("bfloat16", 8, noise_spacings=2, spacings=4),
    "float16": Precision("float16", 11, noise_spacings=9, spacings=16),
}

_ALIASES = {"bf16": "bfloat16", "half": "float16", "fp16": "float16"}


def reduced_precision(dtype: object) -> Precision | None:
    """The format of a dtype (`torch.bfloat16`, `bfloat16`, `bf16`, `half`), None for float32 and anything
    unknown."""
    name = str(dtype).removeprefix("torch.")
    return PRECISIONS.get(_ALIASES.get(name, name))
