"""Prefix sums of long rows with many GPU programs: a scan per block of the row, then one over the blocks.

Why: at 128k tokens a selection scans a few dozen rows of 131072 entries (one per head). torch's and
inductor's scans give each row one program, so 28 rows keep 28 of the H200's 132 SMs busy: 0.24-0.31 ms per
scan in a vertical_slash prefill. Split into 1024-wide blocks, the rows become thousands of short scans.
Only for sums that are exact in any order (integers, or integer-valued float64 below 2^53): the result then
equals `torch.cumsum` bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLOCK = 1024


def prefix_sums(values: torch.Tensor, dtype: torch.dtype | None = None, block: int = BLOCK) -> torch.Tensor:
    """Inclusive prefix sums along the last dim, as `torch.cumsum(values, -1, dtype=dtype)`."""
    n = values.shape[-1]
    if n <= block:
        return torch.cumsum(values, -1, dtype=dtype)
    steps = -(-n // block)
    inner = torch.cumsum(F.pad(values, (0, steps * block - n)).unflatten(-1, (steps, block)), -1, dtype=dtype)
    carry = F.pad(torch.cumsum(inner[..., :-1, -1], -1), (1, 0))  # the sum of every earlier block
    return (inner + carry[..., None]).flatten(-2)[..., :n]
