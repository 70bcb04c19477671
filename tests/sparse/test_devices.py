"""Model parallelism (`parallelize=True` / `device_map="auto"`) puts a model's layers on different devices, so
every tensor the sparse attention path creates must follow the device of the layer's own q/k/v (or be a host
count), never the default device. The CPU-checkable form: under `with torch.device("meta")` every tensor made
without an explicit device is a meta tensor (shape only, no data), so any such tensor in the path breaks the
run or changes its result. Generation (single prompts and batches, prefill, KV compression, decode) and a
declared scoring batch must give exactly the normal results. What this cannot show: kernels on a second GPU
(compiled FlexAttention included), which needs the GPU machine."""

from __future__ import annotations

import pytest
import torch

import sparse_eval
from sparse_eval.compression import LayerStats, head_counts
from sparse_eval.patch import apply

pytestmark = pytest.mark.filterwarnings("ignore::sparse_eval.compression.CompressionShortfallWarning")

SMALL = {
    "dense": {"compression": 1},
    "vertical_slash": {"last_q_size": 16, "n_local": 8, "q_block_size": 16, "block_size": 16},
    "block_sparse": {},
    "flexprefill": {"min_budget": 16, "block_size": 16, "last_q_size": 16},
    "quest": {"page_size": 8},
    "snapkv": {"window": 16, "local": 8, "pool_kernel": 5},
    "ada_snapkv": {"window": 16, "local": 8, "pool_kernel": 5},
}


def test_every_method_is_covered():
    assert set(SMALL) == set(sparse_eval.list_methods())


def run(model, prompts, method: str) -> list[tuple[list[int], dict]]:
    args = {"compression": 4, **SMALL[method]}
    single = sparse_eval.generate(model, prompts[0], method, max_new_tokens=6, **args)
    batch = sparse_eval.generate(model, prompts, method, max_new_tokens=6, **args)
    return [(out.tokens, out.report.to_dict()) for out in (single, *batch)]


@pytest.mark.parametrize("method", sorted(SMALL))
def test_generation_creates_nothing_on_the_default_device(tiny_lm, token_ids, method):
    prompts = [token_ids(150, 0), token_ids(90, 1)]
    expected = run(tiny_lm, prompts, method)
    with torch.device("meta"):
        assert run(tiny_lm, prompts, method) == expected


def test_scoring_batch_creates_nothing_on_the_default_device(tiny_lm, token_ids):
    """A right-padded loglikelihood batch under a prefill method (what sparse-hf's `_model_call` runs)."""
    ids = torch.cat([token_ids(120, 2), token_ids(120, 3)])
    real = torch.arange(120)[None, :] < torch.tensor([120, 70])[:, None]

    def score() -> tuple[torch.Tensor, list[dict]]:
        with (
            torch.inference_mode(),
            apply(tiny_lm, "block_sparse", compression=3) as session,
            session.batch(real) as rows,
        ):
            logits = tiny_lm(ids).logits
        return logits, [report.to_dict() for report in rows.reports]

    logits, reports = score()
    with torch.device("meta"):
        meta_logits, meta_reports = score()
    assert meta_logits.device.type == "cpu"
    torch.testing.assert_close(meta_logits, logits, rtol=0, atol=0)
    assert meta_reports == reports


def test_counts_from_numbers_stay_on_the_host_and_method_counts_where_they_were_made():
    with torch.device("meta"):
        counts = head_counts(3, 2**33 + 1)
        stats = LayerStats(0, "decode")
        stats.add(counts, 7.0)
    assert counts.device.type == "cpu" and counts.dtype == torch.float64
    assert counts[0].item() == 2**33 + 1  # exact: float32 would round it
    assert stats.totals() == (3.0 * (2**33 + 1), 21.0)
    prefill = LayerStats(0, "prefill")
    prefill.add(torch.ones(2, device="meta"), 1.0)
    assert prefill.dense.device.type == prefill.sparse.device.type == "meta"
