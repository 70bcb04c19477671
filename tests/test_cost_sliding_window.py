"""Sliding-window models in the cost model: Gemma 3's local layers (5 of every 6, a 1024-token window) cost
min(L, W) and are never sparsified (PAPER_NOTES §4.1, §1.3 / v3 B.4); dense configs keep their exact numbers."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from longtasks.analysis.arch import ARCH_COLUMNS, Arch
from longtasks.analysis.cost import CostOptions, attention_share, decode_memory, kv_share, prefill_flops
from longtasks.analysis.methods import phase_cost
from longtasks.analysis.store.model_info import MODEL_CONFIG_FILE, find_arch

transformers = pytest.importorskip("transformers")

QWEN_7B = Arch(28, 3584, 28, 4, 128, 18944, 152064)
GEMMA_12B_SIZES = {
    "hidden_size": 3840, "num_hidden_layers": 48, "num_attention_heads": 16, "num_key_value_heads": 8,
    "head_dim": 256, "intermediate_size": 15360, "vocab_size": 262208, "sliding_window": 1024,
}  # fmt: skip
GEMMA_12B_HUB = {  # google/gemma-3-12b-it's config.json leaves the class defaults (head_dim, vocab_size) out
    "model_type": "gemma3",
    "architectures": ["Gemma3ForConditionalGeneration"],
    "text_config": {
        "hidden_size": 3840, "intermediate_size": 15360, "model_type": "gemma3_text", "num_attention_heads": 16,
        "num_hidden_layers": 48, "num_key_value_heads": 8, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "sliding_window": 1024,
    },
}  # fmt: skip
QWEN2_SIZES = {
    "hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
    "intermediate_size": 18944, "vocab_size": 152064,
}  # fmt: skip
B8 = CostOptions(batch_size=8)


@pytest.fixture(scope="module")
def gemma() -> Arch:
    """Gemma-3-12B as the sweep saves it: the multimodal config's `to_dict()`, layer_types included."""
    text = transformers.Gemma3TextConfig(**GEMMA_12B_SIZES, sliding_window_pattern=6)
    return Arch.from_config(transformers.Gemma3Config(text_config=text).to_dict())


def test_gemma3_reads_one_global_layer_in_six(gemma):
    assert (gemma.sliding_window, gemma.n_local_layers, gemma.n_global_layers) == (1024, 40, 8)
    assert (gemma.head_dim, gemma.vocab_size) == (256, 262208)


def test_gemma3_hub_config_and_pattern_only_config_read_the_same(gemma):
    """The Hub file (no vocab_size, head_dim or pattern) and the older `sliding_window_pattern` form."""
    assert Arch.from_config(GEMMA_12B_HUB) == gemma
    older = {**GEMMA_12B_SIZES, "model_type": "gemma3_text", "sliding_window_pattern": 6}
    assert Arch.from_config(older) == gemma


@pytest.mark.parametrize(("length", "prefill", "decode"), [(65536, 0.42, 0.61), (131072, 0.54, 0.75)])
def test_gemma3_12b_shares_match_the_paper(gemma, length, prefill, decode):
    """v3 App. B.4 at B = 8: Gemma-3-12B spends 42 % / 61 % (64K) and 54 % / 75 % (128K) on attention."""
    assert attention_share(gemma, length, B8) == pytest.approx(prefill, abs=0.02)
    assert kv_share(gemma, length, B8) == pytest.approx(decode, abs=0.02)


def test_sparsity_acts_only_on_global_layers(gemma):
    L, per_token = 65536, 2 * gemma.head_dim * gemma.n_kv_heads
    kv = decode_memory(gemma, L, density=0.25).kv_cache
    assert kv == 8 * per_token * L * 0.25 + 40 * per_token * 1024
    dense, sparse = prefill_flops(gemma, L), prefill_flops(gemma, L, density=0.25)
    local = 40 * (4 * 16 * L * 1024 * 256 + 3 * 16 * L * 1024)
    assert sparse.attention_quadratic == pytest.approx((dense.attention_quadratic - local) * 0.25 + local)
    assert sparse.attention_linear == dense.attention_linear
    short = prefill_flops(gemma, 512)  # a sequence shorter than the window: every layer attends to all of it
    assert short.attention_quadratic == 48 * (4 * 16 * 512**2 * 256 + 3 * 16 * 512**2)


def test_sliding_window_reaches_the_results_table_and_the_isocost_points(gemma, tmp_path):
    """The Hub-form config.json (formerly unreadable: no vocab_size) gives the window to the table columns."""
    (tmp_path / MODEL_CONFIG_FILE).write_text(json.dumps(GEMMA_12B_HUB), encoding="utf-8")
    found = find_arch(tmp_path, None)
    assert found == gemma and {"sliding_window", "n_local_layers"} <= set(ARCH_COLUMNS)
    row = {name: float(getattr(found, name)) for name in ARCH_COLUMNS}  # a table row (floats once NaN-able)
    assert Arch.from_row(row) == gemma
    cost = phase_cost(Arch.from_row(row), "quest", "decode", 65536, 10.0, B8)
    full_attention = replace(gemma, sliding_window=0, n_local_layers=0)
    assert cost < 0.5 * phase_cost(full_attention, "quest", "decode", 65536, 10.0, B8)  # about 2x off before


def test_rows_without_window_columns_are_full_attention():
    row = {name: getattr(QWEN_7B, name) for name in ARCH_COLUMNS[:7]}
    assert Arch.from_row(row) == QWEN_7B
    assert Arch.from_row({**row, "sliding_window": math.nan, "n_local_layers": math.nan}) == QWEN_7B


def test_dense_costs_are_unchanged_to_the_last_bit():
    """Qwen2.5-7B at 64K, B = 8, 5x: the numbers the cost model gave before sliding windows were modelled
    (this test passes on that code too)."""
    expected = {
        ("vertical_slash", "prefill", "quadratic"): 1.0943769961632018e16,
        ("block_sparse", "prefill", "quadratic"): 1.021595283881984e16,
        ("vertical_slash", "prefill", "attention"): 1.025415626869091e16,
        ("block_sparse", "prefill", "attention"): 9526339145878732.0,
        ("quest", "decode", "quadratic"): 37000003891.2,
        ("snapkv", "decode", "quadratic"): 10693329203.2,
    }
    for (method, phase, convention), value in expected.items():
        options = B8.with_(convention=convention)
        assert phase_cost(QWEN_7B, method, phase, 65536, 5.0, options) == value, (method, convention)
    assert phase_cost(QWEN_7B, "dense", "prefill", 65536, 1.0, B8) == 2.128737994801152e16
    assert phase_cost(QWEN_7B, "dense", "decode", 65536, 1.0, B8) == 22719237632.0


def test_qwen2_window_is_ignored_unless_use_sliding_window():
    """Qwen2 configs carry sliding_window with use_sliding_window=False: full attention, same costs."""
    hub = {**QWEN2_SIZES, "model_type": "qwen2", "sliding_window": 131072, "use_sliding_window": False,
           "max_window_layers": 28}  # fmt: skip
    built = transformers.Qwen2Config(**QWEN2_SIZES, sliding_window=4096, use_sliding_window=False).to_dict()
    for config in (hub, built):
        arch = Arch.from_config(config)
        assert arch == QWEN_7B and (arch.sliding_window, arch.n_local_layers) == (0, 0)
        assert phase_cost(arch, "quest", "decode", 65536, 5.0, B8) == 37000003891.2
    switched_on = transformers.Qwen2Config(**QWEN2_SIZES, sliding_window=4096, use_sliding_window=True,
                                           max_window_layers=20)  # fmt: skip
    assert Arch.from_config(switched_on.to_dict()).n_local_layers == 8  # layers 20..27, as transformers says
    assert Arch.from_config({**hub, "use_sliding_window": True, "max_window_layers": 20}).n_local_layers == 8


def test_mistral_window_covers_every_layer_and_gemma2_every_other():
    mistral = Arch.from_config({**QWEN2_SIZES, "model_type": "mistral", "sliding_window": 4096})
    assert (mistral.sliding_window, mistral.n_local_layers) == (4096, 28)
    assert decode_memory(mistral, 65536).kv_cache == decode_memory(QWEN_7B, 4096).kv_cache
    assert Arch.from_config({**QWEN2_SIZES, "model_type": "mistral", "sliding_window": None}) == QWEN_7B
    gemma2 = {**QWEN2_SIZES, "model_type": "gemma2", "head_dim": 256, "sliding_window": 4096}
    assert Arch.from_config(gemma2).n_local_layers == 14
    assert Arch.from_config(transformers.Gemma2Config(**gemma2).to_dict()).n_local_layers == 14


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sliding_window": "1024"}, "sliding_window must be a positive whole number"),
        ({"layer_types": ["full_attention"] * 3}, "layer_types lists 3 layers but num_hidden_layers is 28"),
        ({"sliding_window_pattern": 0}, "sliding_window_pattern must be an integer >= 1"),
    ],
)
def test_bad_window_settings_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        Arch.from_config({**QWEN2_SIZES, "sliding_window": 1024, **change})


def test_arch_rejects_impossible_layer_counts():
    with pytest.raises(ValueError, match="n_local_layers must be between 0 and n_layers=28, got 29"):
        Arch(28, 3584, 28, 4, 128, 18944, 152064, sliding_window=1024, n_local_layers=29)
    with pytest.raises(ValueError, match="need a sliding_window >= 1 token, got 0"):
        Arch(28, 3584, 28, 4, 128, 18944, 152064, n_local_layers=4)
