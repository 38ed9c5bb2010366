"""v1's last steps of a log-likelihood, in the dtype of the model's logits.

v1 (and lm-eval's HF class) take `log_softmax` of the logits as the model returns them, gather the
continuation's tokens, and sum them with `logits.sum()` of that tensor: in bfloat16 the result is a
bfloat16 number (accumulated in float32 by torch, rounded once), with bfloat16's coarse spacing and the
ties that follow. The greedy check is `argmax` over the same log-probabilities, so a tie goes to the
lowest token id. Upcasting first would be more precise, but it is not what produced the leaderboard's
numbers; in float32 both are float32 arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def token_logprobs(logits: Any, tokens: Sequence[int]) -> tuple[list[float], list[bool]]:
    """Per row of `logits` (positions, vocabulary): the log-probability of its token, in the logits'
    dtype (exact as a Python float), and whether that token is the argmax (first of equal maxima)."""
    import torch

    logprobs = torch.log_softmax(logits, dim=-1)
    token = torch.tensor(tokens, dtype=torch.long, device=logprobs.device)
    picked = logprobs.gather(-1, token[:, None])[:, 0]
    greedy = logprobs.argmax(dim=-1) == token
    return picked.float().cpu().tolist(), greedy.cpu().tolist()


def continuation_sum(values: Sequence[float], dtype: Any) -> float:
    """`float(x.sum())` of the continuation's log-probabilities as one tensor of `dtype`, in token order."""
    import torch

    return float(torch.tensor(values, dtype=dtype).sum())
