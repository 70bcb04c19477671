"""Quest, SnapKV and Ada-SnapKV selection rules against slow, obvious reimplementations on random tensors,
their budgets against the compression knob, and the cache rewrite."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from transformers import DynamicCache

from sparse_eval.compression import LayerStats
from sparse_eval.kv_cache import cache_bytes, compress_cache, gather_kv, kv_bytes
from sparse_eval.methods.ada_snapkv import AdaSnapKV, ada_snapkv_select_indices
from sparse_eval.methods.quest import Quest, page_summaries, quest_decode_attention, select_tokens
from sparse_eval.methods.snapkv import SnapKV, snapkv_select_indices
from sparse_eval.registry import get_method

# ---------------------------------------------------------------- slow references (loops, no tricks)


def slow_quest_tokens(
    q: torch.Tensor, k: torch.Tensor, compression: float, page: int, share: bool = True
) -> list[set[int]]:
    """q (Hq, D), k (Hkv, L, D): attended positions per KV head (or per query head when not `share`), by
    Quest's rule spelled out."""
    q_heads, kv_heads, length = q.shape[0], k.shape[0], k.shape[1]
    group = q_heads // kv_heads
    pages = [list(range(s, min(s + page, length))) for s in range(0, length, page)]
    current = len(pages) - 1
    target = length / compression
    # number of other pages whose total (with the current page) is closest to the target; ties go up
    options = [(abs(e * page + len(pages[-1]) - target), -e) for e in range(current + 1)]
    extra = -min(options)[1]
    result = []
    for h in range(kv_heads if share else q_heads):
        kv, members = (h, range(h * group, (h + 1) * group)) if share else (h // group, [h])
        scores = []
        for p in range(current):
            keys = k[kv, pages[p]].double()
            lo, hi = keys.min(dim=0).values, keys.max(dim=0).values
            total = 0.0
            for m in members:
                qv = q[m].double()
                total += sum(max(float(qv[d] * lo[d]), float(qv[d] * hi[d])) for d in range(len(qv)))
            total = float(torch.tensor(total, dtype=torch.float32))  # the rule ranks float32 scores
            scores.append((total, p))
        chosen = [p for _, p in sorted(scores, reverse=True)[:extra]] + [current]  # ties: the later page
        result.append({t for p in chosen for t in pages[p]})
    return result


def slow_window_scores(q: torch.Tensor, k: torch.Tensor, window: int, scaling: float, reduce: str):
    """q (Hq, L, D), k (Hkv, L, D) -> per KV head list of L scores (mean or max of window probabilities)."""
    q_heads, length = q.shape[0], q.shape[1]
    kv_heads = k.shape[0]
    group = q_heads // kv_heads
    w = min(window, length)
    out = []
    for h in range(kv_heads):
        rows = []
        for g in range(group):
            for pos in range(length - w, length):
                logits = [
                    float(q[h * group + g, pos].double() @ k[h, j].double()) * scaling for j in range(pos + 1)
                ]
                top = max(logits)
                exps = [math.exp(x - top) for x in logits]
                total = sum(exps)
                rows.append([e / total for e in exps] + [0.0] * (length - pos - 1))
        if reduce == "mean":
            out.append([sum(r[j] for r in rows) / len(rows) for j in range(length)])
        else:
            out.append([max(r[j] for r in rows) for j in range(length)])
    return out


def slow_pool(scores: list[float], kernel: int) -> list[float]:
    half = kernel // 2
    n = len(scores)
    return [sum(scores[j] for j in range(i - half, i + half + 1) if 0 <= j < n) / kernel for i in range(n)]


def slow_forced(length: int, capacity: int, sink: int, local: int) -> set[int]:
    n_sink = min(sink, capacity)
    n_local = min(local, capacity - n_sink)
    return set(range(n_sink)) | set(range(length - n_local, length))


def slow_snapkv(q, k, compression, window, kernel, sink, local, scaling):
    """-> (kept positions per KV head, pooled scores per KV head)."""
    length = k.shape[1]
    capacity = max(1, min(length, int(length / compression + 0.5)))
    all_pooled = [slow_pool(s, kernel) for s in slow_window_scores(q, k, window, scaling, "mean")]
    if capacity >= length:
        return [set(range(length)) for _ in range(k.shape[0])], all_pooled
    result = []
    for pooled in all_pooled:
        forced = slow_forced(length, capacity, sink, local)
        rest = sorted((j for j in range(length) if j not in forced), key=lambda j: -pooled[j])
        result.append(forced | set(rest[: capacity - len(forced)]))
    return result, all_pooled


def slow_ada(q, k, compression, window, kernel, sink, local, floor, scaling):
    """-> (kept positions per KV head, pooled scores per KV head)."""
    kv_heads, length = k.shape[0], k.shape[1]
    capacity = max(1, min(length, int(length / compression + 0.5)))
    pooled = [slow_pool(s, kernel) for s in slow_window_scores(q, k, window, scaling, "max")]
    if capacity >= length:
        return [set(range(length)) for _ in range(kv_heads)], pooled
    forced = slow_forced(length, capacity, sink, local)
    per_head = min(capacity, max(int(capacity * floor), len(forced)))
    kept = []
    for h in range(kv_heads):
        ranked = sorted(forced) + sorted(
            (j for j in range(length) if j not in forced), key=lambda j: -pooled[h][j]
        )
        kept.append(set(ranked[:per_head]))
    pool = sorted(
        ((pooled[h][j], h, j) for h in range(kv_heads) for j in range(length) if j not in kept[h]),
        reverse=True,
    )
    for _, h, j in pool[: kv_heads * (capacity - per_head)]:
        kept[h].add(j)
    return kept, pooled


def assert_same_choice(got: list[set[int]], expected: list[set[int]], pooled, per_head: bool = True) -> None:
    """Equal selections, or (where scores tie exactly, e.g. pooling wider than the prompt) selections that
    differ only among positions of equal score: the chosen scores must then be the same multiset."""
    if got == expected:
        return
    if per_head:
        for h, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert len(a) == len(b)
            values_a = sorted(pooled[h][j] for j in a)
            values_b = sorted(pooled[h][j] for j in b)
            assert values_a == pytest.approx(values_b, abs=1e-7), f"head {h}: {sorted(a ^ b)}"
    else:
        values_a = sorted(pooled[h][j] for h, a in enumerate(got) for j in a)
        values_b = sorted(pooled[h][j] for h, b in enumerate(expected) for j in b)
        assert values_a == pytest.approx(values_b, abs=1e-7)


def as_sets(indices: torch.Tensor) -> list[set[int]]:
    """(1, H, K) with -1 padding -> list of sets per head."""
    return [{int(i) for i in row if i >= 0} for row in indices[0]]


# ---------------------------------------------------------------- Quest


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    length=st.integers(1, 200),
    compression=st.sampled_from([1.0, 1.5, 2.0, 3.0, 5.0, 8.0]),
    page=st.sampled_from([4, 8, 16]),
    kv_heads=st.sampled_from([1, 2]),
    group=st.sampled_from([1, 3]),
    share=st.booleans(),
)
def test_quest_selection_matches_slow_rule(seed, length, compression, page, kv_heads, group, share):
    gen = torch.Generator().manual_seed(seed)
    dim = 8
    q = torch.randn(1, kv_heads * group, 1, dim, generator=gen)
    k = torch.randn(1, kv_heads, length, dim, generator=gen)
    tokens = select_tokens(q, page_summaries(k, page), length, compression, page, share)
    expected = slow_quest_tokens(q[0, :, 0], k[0], compression, page, share)
    assert [set(row.tolist()) for row in tokens[0]] == expected
    assert all(len(set(row.tolist())) == len(row) for row in tokens[0])  # no position twice


@pytest.mark.parametrize("share", [True, False])
def test_quest_fast_path_equals_masked_reference(share):
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 6, 1, 16, generator=gen)
    k, v = torch.randn(2, 1, 2, 203, 16, generator=gen)
    kw = {"scaling": 0.25, "compression": 4, "page_size": 16, "share_pages": share}
    fast, n_fast = quest_decode_attention(q, k, v, gather=True, **kw)
    ref, n_ref = quest_decode_attention(q, k, v, gather=False, **kw)
    assert n_fast == n_ref
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)
    # and neither is dense attention: the compression is real
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.25, enable_gqa=True)
    assert not torch.allclose(fast, dense, atol=1e-4)


def test_quest_full_budget_is_dense():
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(1, 4, 1, 8, generator=gen)
    k, v = torch.randn(2, 1, 2, 77, 8, generator=gen)
    out, attended = quest_decode_attention(q, k, v, scaling=0.3, compression=1.0, page_size=16)
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3, enable_gqa=True)
    assert attended == 77
    torch.testing.assert_close(out, dense, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("length", [100, 1000, 4096, 10_007, 131_072])
@pytest.mark.parametrize("compression", [2, 5, 10, 20])
def test_quest_budget_tracks_compression(length, compression):
    """Attended tokens are within half a page of length / compression, hence within 10 % of the target
    once the budget spans at least 5 pages (80 tokens: any prompt of 1.6k tokens at 20x)."""
    k = torch.randn(1, 1, length, 4)
    attended = select_tokens(torch.randn(1, 1, 1, 4), page_summaries(k, 16), length, compression, 16).shape[
        -1
    ]
    assert abs(attended - length / compression) <= 8
    if length / compression >= 80:
        assert abs(length / attended / compression - 1) <= 0.10


def test_quest_method_extends_page_summaries_and_reports():
    """Decoding through the method (summaries built at prefill, extended page by page) selects the same as
    recomputing the summaries from the whole cache each step."""
    gen = torch.Generator().manual_seed(2)
    method = Quest(compression=3, page_size=4, backend="reference")
    q = torch.randn(1, 4, 30, 8, generator=gen)
    k, v = torch.randn(2, 1, 2, 30, 8, generator=gen)
    method.prefill(q, k, v, layer_idx=0, scaling=0.3, stats=LayerStats(0, "prefill"))
    stats = LayerStats(0, "decode")
    for _ in range(9):
        k = torch.cat([k, torch.randn(1, 2, 1, 8, generator=gen)], dim=2)
        v = torch.cat([v, torch.randn(1, 2, 1, 8, generator=gen)], dim=2)
        qd = torch.randn(1, 4, 1, 8, generator=gen)
        out = method.decode(qd, k, v, layer_idx=0, scaling=0.3, stats=stats)
        ref, _ = quest_decode_attention(qd, k, v, scaling=0.3, compression=3, page_size=4, gather=True)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert stats.calls == 9
    assert len(stats.per_head()) == 4
    assert 2.5 < stats.achieved_compression < 3.5


# ---------------------------------------------------------------- SnapKV / Ada-SnapKV


def _qk(seed: int, length: int, kv_heads: int, group: int, dim: int = 8):
    gen = torch.Generator().manual_seed(seed)
    # spread-out logits so that attention is peaked and scores differ clearly
    q = torch.randn(1, kv_heads * group, length, dim, generator=gen) * 2
    k = torch.randn(1, kv_heads, length, dim, generator=gen)
    return q, k


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    length=st.integers(8, 90),
    compression=st.sampled_from([1.0, 2.0, 3.0, 6.0]),
    window=st.sampled_from([1, 8, 32]),
    kernel=st.sampled_from([1, 5, 21]),
    sink=st.sampled_from([0, 2]),
    local=st.sampled_from([0, 6]),
)
@example(seed=0, length=8, compression=2.0, window=1, kernel=21, sink=0, local=0)  # all pooled scores tie
def test_snapkv_selection_matches_slow_rule(seed, length, compression, window, kernel, sink, local):
    q, k = _qk(seed, length, kv_heads=2, group=2)
    got = snapkv_select_indices(
        q, k, compression=compression, scaling=0.35, window=window, pool_kernel=kernel, sink=sink, local=local
    )
    expected, pooled = slow_snapkv(q[0], k[0], compression, window, kernel, sink, local, 0.35)
    assert_same_choice(as_sets(got), expected, pooled)
    assert got.shape[-1] == max(1, min(length, int(length / compression + 0.5)))
    assert bool((got[..., 1:] > got[..., :-1]).all())  # ascending, no duplicates


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    length=st.integers(8, 90),
    compression=st.sampled_from([1.0, 2.0, 3.0, 6.0]),
    window=st.sampled_from([1, 8, 32]),
    kernel=st.sampled_from([1, 5]),
    local=st.sampled_from([0, 4]),
    floor=st.sampled_from([0.0, 0.2, 0.6]),
)
def test_ada_snapkv_selection_matches_slow_rule(seed, length, compression, window, kernel, local, floor):
    q, k = _qk(seed, length, kv_heads=3, group=2)
    indices, kept = ada_snapkv_select_indices(
        q,
        k,
        compression=compression,
        scaling=0.35,
        window=window,
        pool_kernel=kernel,
        sink=2,
        local=local,
        floor=floor,
    )
    expected, pooled = slow_ada(q[0], k[0], compression, window, kernel, 2, local, floor, 0.35)
    assert_same_choice(as_sets(indices), expected, pooled, per_head=False)
    assert kept[0].tolist() == [len(s) for s in as_sets(indices)]
    capacity = max(1, min(length, int(length / compression + 0.5)))
    assert int(kept.sum()) == 3 * capacity  # the layer budget is exact


def test_ada_snapkv_moves_budget_between_heads():
    """A head whose attention is concentrated on few tokens gives budget to a head with flat attention."""
    length, dim = 400, 16
    gen = torch.Generator().manual_seed(3)
    k = torch.randn(1, 2, length, dim, generator=gen)
    q = torch.zeros(1, 2, length, dim)
    q[0, 0] = k[0, 0, 50] * 8  # head 0: every window query points at position 50
    q[0, 1] = torch.randn(length, dim, generator=gen) * 0.01  # head 1: near-uniform attention
    indices, kept = ada_snapkv_select_indices(
        q, k, compression=4, scaling=1.0, window=32, pool_kernel=1, sink=0, local=0, floor=0.2
    )
    assert int(kept.sum()) == 2 * 100
    assert int(kept[0, 1]) > int(kept[0, 0])
    assert 50 in as_sets(indices)[0]


@pytest.mark.parametrize("length", [300, 4096, 10_007])
@pytest.mark.parametrize("compression", [2, 5, 10, 20])
def test_snapkv_capacity_within_ten_percent(length, compression):
    q, k = _qk(0, length, kv_heads=1, group=1, dim=4)
    got = snapkv_select_indices(q, k, compression=compression, scaling=0.5, window=16)
    assert abs(length / got.shape[-1] / compression - 1) <= 0.10


def test_short_prompt_high_compression_keeps_sinks_then_recent():
    q, k = _qk(5, 200, kv_heads=1, group=1)
    got = snapkv_select_indices(q, k, compression=20, scaling=0.5)  # capacity 10 < 4 sinks + 128 local
    assert as_sets(got)[0] == {0, 1, 2, 3, *range(194, 200)}


def test_methods_registered_with_seed_defaults_and_validate():
    quest = get_method("quest", compression=10)
    snap = get_method("snapkv", compression=10)
    ada = get_method("ada_snapkv", compression=10)
    assert (quest.page_size, quest.phase) == (16, "decode")
    assert (snap.window, snap.pool_kernel, snap.sink, snap.local, snap.phase) == (256, 21, 4, 128, "kv")
    assert (ada.window, ada.pool_kernel, ada.sink, ada.local, ada.floor) == (256, 21, 4, 128, 0.2)
    with pytest.raises(ValueError, match="pool_kernel"):
        SnapKV(compression=2, pool_kernel=4)
    with pytest.raises(ValueError, match="floor"):
        AdaSnapKV(compression=2, floor=1.5)
    with pytest.raises(ValueError, match="page_size"):
        Quest(compression=2, page_size=0)


# ---------------------------------------------------------------- cache rewrite


def _filled_cache(layers: int, heads: int, length: int, dim: int, seed: int = 0) -> DynamicCache:
    gen = torch.Generator().manual_seed(seed)
    cache = DynamicCache()
    for i in range(layers):
        cache.update(
            torch.randn(1, heads, length, dim, generator=gen),
            torch.randn(1, heads, length, dim, generator=gen),
            i,
        )
    return cache


def test_compress_cache_gathers_per_head_and_pads():
    cache = _filled_cache(2, 2, 10, 4)
    keys0, values1 = cache.layers[0].keys.clone(), cache.layers[1].values.clone()
    idx0 = torch.tensor([[[0, 3, 9], [1, 2, 5]]])
    idx1 = torch.tensor([[[4, 7, -1, -1], [0, 1, 2, 8]]])
    before = cache_bytes(cache)
    told: list[tuple[int, int]] = []

    class Session:  # stands for the session that masks the padding when decoding
        def on_kv_compressed(self, layer_idx: int, padded_len: int) -> None:
            told.append((layer_idx, padded_len))

    compress_cache(cache, {0: idx0, 1: idx1}, Session())
    assert told == [(0, 3), (1, 4)]
    torch.testing.assert_close(cache.layers[0].keys[0, 1], keys0[0, 1, [1, 2, 5]])
    torch.testing.assert_close(cache.layers[1].values[0, 0, :2], values1[0, 0, [4, 7]])
    assert bool((cache.layers[1].values[0, 0, 2:] == 0).all())
    assert cache.layers[0].get_seq_length() == 3 and cache.layers[1].get_seq_length() == 4
    assert cache_bytes(cache) == before * 7 // 20
    # decoding appends as usual to layers of different lengths
    cache.update(torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4), 0)
    assert cache.layers[0].keys.shape[2] == 4


def test_compress_cache_rejects_bad_indices():
    cache = _filled_cache(1, 2, 10, 4)
    with pytest.raises(ValueError, match="past the cached length"):
        compress_cache(cache, {0: torch.tensor([[[0, 10], [1, 2]]])})
    with pytest.raises(ValueError, match="shape"):
        compress_cache(cache, {0: torch.tensor([[0, 1]])})
    with pytest.raises(ValueError, match="no cache layer 3"):
        compress_cache(cache, {3: torch.tensor([[[0], [1]]])})
    with pytest.raises(ValueError, match=r"layer 0: the kept indices hold padding .* pass the session"):
        compress_cache(cache, {0: torch.tensor([[[0, 1], [2, -1]]])})  # nobody would mask the padded slot
    two_layers = _filled_cache(2, 2, 10, 4)
    with pytest.raises(ValueError, match="layer 1: kept index 10 is past the cached length"):
        compress_cache(two_layers, {0: torch.tensor([[[0], [1]]]), 1: torch.tensor([[[0], [10]]])})
    assert [layer.keys.shape[2] for layer in two_layers.layers] == [10, 10]  # all layers or none


def test_gather_kv_matches_indexing():
    states = torch.randn(1, 2, 6, 3)
    idx = torch.tensor([[[5, 0], [2, -1]]])
    out = gather_kv(states, idx)
    torch.testing.assert_close(out[0, 0], states[0, 0, [5, 0]])
    torch.testing.assert_close(out[0, 1, 0], states[0, 1, 2])
    assert bool((out[0, 1, 1] == 0).all())


def test_kv_decode_masks_padding_and_reports_against_prompt():
    """After an Ada-SnapKV compression with uneven heads, decoding equals attention over exactly the kept
    tokens of each head plus the new ones, and the report counts against the uncompressed length."""
    length, dim = 120, 8
    q, k = _qk(7, length, kv_heads=2, group=2, dim=dim)
    v = torch.randn(1, 2, length, dim)
    method = AdaSnapKV(compression=4, window=16, pool_kernel=5, sink=2, local=4, backend="reference")
    kv_stats = LayerStats(0, "kv")
    indices = method.select_kv(q, k, v, layer_idx=0, scaling=0.35, stats=kv_stats)
    cache = DynamicCache()
    cache.update(k, v, 0)
    compress_cache(cache, {0: indices}, method)
    new_k, new_v = torch.randn(2, 1, 2, 1, dim)
    keys, values = cache.update(new_k, new_v, 0)
    qd = torch.randn(1, 4, 1, dim)
    stats = LayerStats(0, "decode")
    out = method.decode(qd, keys, values, layer_idx=0, scaling=0.35, stats=stats)
    for h, kept in enumerate(as_sets(indices)):
        pos = sorted(kept)
        kh = torch.cat([k[0, h, pos], new_k[0, h]])[None, None]
        vh = torch.cat([v[0, h, pos], new_v[0, h]])[None, None]
        ref = torch.nn.functional.scaled_dot_product_attention(qd[:, 2 * h : 2 * h + 2], kh, vh, scale=0.35)
        torch.testing.assert_close(out[:, 2 * h : 2 * h + 2], ref, rtol=1e-5, atol=1e-6)
    kept_counts = [len(s) for s in as_sets(indices)]
    assert kv_stats.per_head() == pytest.approx([length / n for n in kept_counts])
    assert stats.per_head() == pytest.approx([(length + 1) / (n + 1) for n in kept_counts for _ in range(2)])


def test_tokens_fed_after_a_compressed_cache_see_only_the_kept_tokens():
    """A question fed in one forward pass after an Ada-SnapKV compression attends each head's kept tokens and
    the new tokens causally, never the padded slots (it attended them: logits off by 0.05 in a tiny model),
    and counts against the uncompressed prompt."""
    length, dim, new = 120, 8, 3
    q, k = _qk(7, length, kv_heads=2, group=2, dim=dim)
    v = torch.randn(1, 2, length, dim)
    method = AdaSnapKV(compression=4, window=16, pool_kernel=5, sink=2, local=4, backend="reference")
    indices = method.select_kv(q, k, v, layer_idx=0, scaling=0.35, stats=LayerStats(0, "kv"))
    cache = DynamicCache()
    cache.update(k, v, 0)
    compress_cache(cache, {0: indices}, method)
    new_k, new_v = torch.randn(2, 1, 2, new, dim)
    keys, values = cache.update(new_k, new_v, 0)
    qn = torch.randn(1, 4, new, dim)
    stats = LayerStats(0, "prefill")
    out = method.extend(qn, keys, values, layer_idx=0, scaling=0.35, stats=stats)
    kept_counts = [len(s) for s in as_sets(indices)]
    assert min(kept_counts) < max(kept_counts)  # the layout holds padding
    for h, kept in enumerate(as_sets(indices)):
        pos = sorted(kept)
        kh = torch.cat([k[0, h, pos], new_k[0, h]])[None, None]
        vh = torch.cat([v[0, h, pos], new_v[0, h]])[None, None]
        causal = torch.ones(new, len(pos) + new, dtype=torch.bool).tril(len(pos))
        ref = torch.nn.functional.scaled_dot_product_attention(
            qn[:, 2 * h : 2 * h + 2], kh, vh, attn_mask=causal, scale=0.35
        )
        torch.testing.assert_close(out[:, 2 * h : 2 * h + 2], ref, rtol=1e-5, atol=1e-6)
    pairs = new * (new + 1) // 2
    expected = [(new * length + pairs) / (new * n + pairs) for n in kept_counts for _ in range(2)]
    assert stats.per_head() == pytest.approx(expected)


@pytest.mark.parametrize("method", ["snapkv", "ada_snapkv"])
def test_a_chunk_after_compression_equals_feeding_its_tokens_one_by_one(build_tiny_lm, token_ids, method):
    import sparse_eval

    model, prompt, suffix = build_tiny_lm("llama"), token_ids(60, 3), token_ids(3, 4)
    knobs = {"compression": 3, "window": 8, "pool_kernel": 3, "sink": 2, "local": 4}
    logits = {}
    for mode in ("steps", "chunk"):
        with torch.inference_mode(), sparse_eval.apply(model, method, **knobs) as session:
            cache = DynamicCache(config=model.config)
            model(
                input_ids=prompt, past_key_values=cache, position_ids=torch.arange(60)[None], use_cache=True
            )
            compress_cache(cache, session.pending_kv, session)
            session.pending_kv.clear()
            steps = [slice(j, j + 1) for j in range(3)] if mode == "steps" else [slice(0, 3)]
            for part in steps:
                positions = torch.arange(60 + part.start, 60 + part.stop)[None]
                out = model(
                    input_ids=suffix[:, part], past_key_values=cache, position_ids=positions, use_cache=True
                )
            logits[mode] = out.logits[0, -1]
    torch.testing.assert_close(logits["chunk"], logits["steps"], rtol=1e-5, atol=1e-5)


def test_masked_kv_decode_never_uses_cudnn_attention(monkeypatch):
    """cuDNN builds a plan for every new key length when given a mask, i.e. every decode step (measured: 24.5 ms
    of host time per call on an H200): a decode over a ragged layout runs with cuDNN disabled, then restores it."""
    import sparse_eval.methods.kv_compress as kv_compress

    seen: list[tuple[bool, bool]] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording(*args, **kwargs):
        seen.append((kwargs.get("attn_mask") is not None, torch.backends.cuda.cudnn_sdp_enabled()))
        return sdpa(*args, **kwargs)

    length, dim = 120, 8
    q, k = _qk(7, length, kv_heads=2, group=2, dim=dim)
    v = torch.randn(1, 2, length, dim)
    method = AdaSnapKV(compression=4, window=16, pool_kernel=5, sink=2, local=4, backend="reference")
    indices = method.select_kv(q, k, v, layer_idx=0, scaling=0.35, stats=LayerStats(0, "kv"))
    cache = DynamicCache()
    cache.update(k, v, 0)
    compress_cache(cache, {0: indices}, method)
    keys, values = cache.update(*torch.randn(2, 1, 2, 1, dim), 0)
    monkeypatch.setattr(kv_compress.F, "scaled_dot_product_attention", recording)
    assert torch.backends.cuda.cudnn_sdp_enabled()
    method.decode(
        torch.randn(1, 4, 1, dim), keys, values, layer_idx=0, scaling=0.35, stats=LayerStats(0, "decode")
    )
    assert seen == [(True, False)]  # the layout is ragged: masked, and cuDNN off during the call
    assert torch.backends.cuda.cudnn_sdp_enabled()


def test_kv_bytes_reports_dense_stored_and_kept():
    q, k = _qk(9, 1000, kv_heads=2, group=2, dim=8)
    v = torch.randn_like(k)
    snap = kv_bytes(SnapKV(compression=10), q, k, v, scaling=0.35)
    assert snap["dense"] == 2 * 2 * 1000 * 8 * 4
    assert snap["stored"] == snap["kept"] == 2 * 2 * 100 * 8 * 4
    ada = kv_bytes(AdaSnapKV(compression=10), q, k, v, scaling=0.35)
    assert ada["kept"] == snap["kept"] <= ada["stored"]
    assert kv_bytes(Quest(compression=10), q, k, v, scaling=0.35)["stored"] == snap["dense"]
