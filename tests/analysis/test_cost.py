"""The cost model against the paper's published shares (PAPER_NOTES §1.3) and a tiny config by hand."""

from __future__ import annotations

import pytest

from longtasks.analysis.arch import Arch
from longtasks.analysis.cost import (
    CostOptions,
    attention_share,
    decode_memory,
    kv_share,
    prefill_flops,
    quest_indexing,
    vertical_slash_indexing,
)
from longtasks.analysis.methods import method_phase, phase_cost

# Qwen2.5-Instruct 7B/14B/32B/72B (PAPER_NOTES §4.1) with d_h = 128 and |V| = 152064.
QWEN = [
    Arch(28, 3584, 28, 4, 128, 18944, 152064),
    Arch(48, 5120, 40, 8, 128, 13824, 152064),
    Arch(64, 5120, 40, 8, 128, 27648, 152064),
    Arch(80, 8192, 64, 8, 128, 29568, 152064),
]
TINY = Arch(
    n_layers=2, hidden_size=8, n_heads=2, n_kv_heads=1, head_dim=4, intermediate_size=16, vocab_size=10
)


def mean(values):
    values = list(values)
    return sum(values) / len(values)


@pytest.mark.parametrize(("length", "share"), [(16384, 0.40), (32768, 0.54), (65536, 0.68), (131072, 0.80)])
def test_prefill_attention_share_matches_the_paper(length, share):
    """v3 App. B.2 / Fig. 12: attention is 40 % (16K), 68 % (64K), 80 % (128K) of prefill FLOPs."""
    assert round(mean(attention_share(a, length) for a in QWEN), 2) == share


@pytest.mark.parametrize(
    ("convention", "expected"), [("quadratic", (1.31, 2.00, 2.59)), ("attention", (1.5, 2.2, 2.8))]
)
def test_five_x_sparsity_speedups_under_each_convention(convention, expected):
    """The literal Eq. 3 (rho on L^2 only) vs the Amdahl reading the paper's quoted speedups follow (§1.3)."""
    options = CostOptions(convention=convention, indexing=False)
    digits = 2 if convention == "quadratic" else 1
    for length, want in zip((16384, 65536, 131072), expected, strict=True):
        speedups = [
            prefill_flops(a, length, options=options).total
            / prefill_flops(a, length, density=0.2, options=options).total
            for a in QWEN
        ]
        assert round(mean(speedups), digits) == want


@pytest.mark.parametrize(("batch", "short", "long"), [(1, 0.06, 0.33), (8, 0.33, 0.79), (64, 0.79, 0.97)])
def test_decode_kv_share_matches_the_notes_table(batch, short, long):
    options = CostOptions(batch_size=batch)
    assert round(mean(kv_share(a, 16384, options) for a in QWEN), 2) == short
    assert round(mean(kv_share(a, 131072, options) for a in QWEN), 2) == long


def test_prefill_flops_of_a_tiny_config_by_hand():
    L = 3
    # Eq. 2: 2·3·8 = 48. Eq. 3 linear: 2 layers · 2·3·8·(8 + 2·4·1 + 8) = 2·48·24 = 2304.
    # Eq. 3 quadratic: 2 · (2·2·9·4 + 3·2·9 + 2·2·9·4) = 2 · (144 + 54 + 144) = 684.
    # Eq. 4: 2 · (6·3·8·16 + 2·3·16) = 2 · (2304 + 96) = 4800. Eq. 5: 2·3·8·10 = 480.
    flops = prefill_flops(TINY, L)
    assert (flops.embedding, flops.attention_linear, flops.attention_quadratic, flops.mlp, flops.logits) == (
        48,
        2304,
        684,
        4800,
        480,
    )
    assert flops.total == 48 + 2304 + 684 + 4800 + 480
    half = prefill_flops(TINY, L, density=0.5)
    assert half.attention_quadratic == 342 and half.attention_linear == 2304
    whole = prefill_flops(TINY, L, density=0.5, options=CostOptions(convention="attention", batch_size=2))
    assert (
        whole.attention_linear == 2 * 1152 and whole.attention_quadratic == 2 * 342 and whole.mlp == 2 * 4800
    )


def test_decode_memory_and_indexing_of_a_tiny_config_by_hand():
    # Eq. 8: 2·(4·64 + 3·8·16) + 8·10 + 8 = 2·(256 + 384) + 88 = 1368. Eq. 7: 2·2·100·4·1 = 1600.
    memory = decode_memory(TINY, 100, density=0.25, options=CostOptions(batch_size=3))
    assert memory.weights == 1368 and memory.kv_cache == 3 * 1600 * 0.25
    # Eq. 10: B·N·n_kv·2·d·L/p = 1·2·1·2·8·64/16 = 128; with d_h instead of d: 64.
    assert quest_indexing(TINY, 64) == 128
    assert quest_indexing(TINY, 64, CostOptions(indexing_dim="head_dim")) == 64
    # Eq. 9 at L = 64, q = 4, k_v = k_s = 8: 2·2·[2·8·64·4 + 5·64·4 + 2·64·6 + 1·16] = 4·5904.
    assert vertical_slash_indexing(TINY, 64, 8, 8, CostOptions(vs_window=4)) == 4 * (4096 + 1280 + 768 + 16)


def test_phase_cost_adds_the_method_overheads_and_knows_the_phases():
    options = CostOptions()
    dense = phase_cost(QWEN[0], "dense", "prefill", 16384, 1.0, options)
    vs = phase_cost(QWEN[0], "vertical_slash", "prefill", 16384, 10.0, options)
    plain = prefill_flops(QWEN[0], 16384, density=0.1).total
    assert plain < vs < dense
    quest = phase_cost(QWEN[0], "quest", "decode", 16384, 10.0, options)
    assert quest == decode_memory(QWEN[0], 16384, density=0.1).total + quest_indexing(QWEN[0], 16384)
    assert method_phase("quest") == "decode" and method_phase("block_sparse") == "prefill"
    with pytest.raises(ValueError, match="--phase"):
        method_phase("my_method")
    assert method_phase("my_method", {"my_method": "prefill"}) == "prefill"
    with pytest.raises(ValueError, match="compression"):
        phase_cost(QWEN[0], "quest", "decode", 16384, 0.5, options)
