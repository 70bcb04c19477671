"""Prefix sums in blocks equal torch.cumsum bit for bit on the sums they are used for (exact in any order)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparse_eval.backends.scan import prefix_sums


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5000), block=st.sampled_from([1, 7, 64, 1024]), seed=st.integers(0, 2**16))
def test_prefix_sums_equal_cumsum_for_flags_and_integer_valued_float64(n, block, seed):
    g = torch.Generator().manual_seed(seed)
    flags = torch.rand(2, 3, n, generator=g) < 0.3
    assert torch.equal(
        prefix_sums(flags, torch.int32, block=block), torch.cumsum(flags, -1, dtype=torch.int32)
    )
    costs = torch.randint(0, 2**30, (4, n), generator=g).double()  # sums stay below 2^53: exact
    assert torch.equal(prefix_sums(costs, block=block), torch.cumsum(costs, -1))
