"""Selection must not read device values on the host: on a GPU each read waits for every queued kernel, so a
layer's selection could no longer overlap the GPU work before it (a 0-d tensor used as an index was one)."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sparse_eval import get_method

HOST_READS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.item.default"}


class HostReads(TorchDispatchMode):
    """Records the operators that copy a tensor's value to the host."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if str(func) in HOST_READS:
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("flexprefill", {"block_size": 16, "min_budget": 32, "last_q_size": 48, "tau": 0.3}),
        (
            "flexprefill",
            {
                "block_size": 16,
                "min_budget": 32,
                "last_q_size": 48,
                "tau": 0.3,
                "compression": 1.0,
                "gamma": 0.6,
            },
        ),
        ("vertical_slash", {"block_size": 16, "q_block_size": 32, "last_q_size": 48, "n_local": 8}),
        ("block_sparse", {"block_size": 16, "q_block_size": 32}),
    ],
)
def test_selection_reads_nothing_back_to_the_host(name, kwargs):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 500, 32, generator=g)
    k = torch.randn(1, 2, 500, 32, generator=g)
    method = get_method(name, **{"compression": 4.0, **kwargs})
    method.select(q, k, scaling=0.25, layer_idx=0)  # shape tables are built (and cached) on the first call
    with HostReads() as reads:
        method.select(q, k, scaling=0.25, layer_idx=0)
    assert reads.seen == []
