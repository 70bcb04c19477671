"""Prefill methods: each selected pattern equals a slow, obvious re-implementation of the rule on random
inputs; compression 1 reproduces dense attention; fixed-budget methods land within 10% of the target."""

from __future__ import annotations

import math

import pytest
import torch

from sparse_eval import get_method
from sparse_eval.backends.dense import dense_attention
from sparse_eval.backends.pattern import attended_pairs, dense_mask
from sparse_eval.compression import CompressionReport, causal_pairs, pair_budget
from sparse_eval.methods.estimation import vertical_slash_scores

INF = float("inf")
SMALL = {
    "vertical_slash": {"block_size": 16, "q_block_size": 32, "last_q_size": 48, "n_local": 8},
    "block_sparse": {"block_size": 16, "q_block_size": 32},
    "flexprefill": {"block_size": 16, "min_budget": 32, "last_q_size": 48},
}


def qk(L: int, seed: int, hq: int = 4, hkv: int = 2, d: int = 16) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    # A little structure (a shared direction) so that scores are not all alike.
    q = torch.randn(1, hq, L, d, generator=g) + 0.5 * torch.randn(1, hq, 1, d, generator=g)
    k = torch.randn(1, hkv, L, d, generator=g) + 0.5 * torch.randn(1, hkv, 1, d, generator=g)
    v = torch.randn(1, hkv, L, d, generator=g)
    return q, k, v


def causal_mask(L: int) -> torch.Tensor:
    return torch.ones(L, L, dtype=torch.bool).tril()


def causal_tiles(L: int, bs: int) -> torch.Tensor:
    n = math.ceil(L / bs)
    return torch.ones(n, n, dtype=torch.bool).tril()


def tile_ids(L: int, bq: int, bk: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(L)[:, None].expand(L, L)
    cols = torch.arange(L)[None, :].expand(L, L)
    return rows // bq, cols // bk


# ----------------------------------------------------------------------------------------- slow rules
def slow_vertical_slash(method, q, k, scaling) -> torch.Tensor:
    L, H = q.shape[-2], q.shape[1]
    bq, bk = method.q_block_size, method.block_size
    vertical, slash = vertical_slash_scores(q, k, scaling, method.last_q_size)
    budget = pair_budget(L, method.compression)
    causal = causal_mask(L)
    ti, tj = tile_ids(L, bq, bk)
    diag = (bq // bk) * ti - tj  # tiles on one tile-diagonal share this number
    offset = torch.arange(L)[:, None] - torch.arange(L)[None, :]
    out = torch.zeros(H, L, L, dtype=torch.bool)
    for h in range(H):
        v, s = vertical[0, h].clone(), slash[0, h].clone()
        v[: method.n_sinks] = INF
        s[: method.n_local] = INF
        # every tile-diagonal: the best slash passing through its causal pairs, and its pair count
        info = {}
        for u in torch.unique(diag[causal]).tolist():
            pairs = causal & (diag == u)
            info[u] = (float(s[offset[pairs]].max()), int(pairs.sum()))
        cum, chosen = 0.0, []
        for u in sorted(info, key=lambda u: (-info[u][0], u)):
            cum += info[u][1]
            if cum <= budget * (1 - method.vertical_share) or info[u][0] == INF:
                chosen.append(u)
        mask = causal & torch.isin(diag, torch.tensor(chosen))
        remaining = budget - int(mask.sum())
        cost = (causal & ~mask).sum(0)  # rows at or after each column not covered yet
        cum = 0.0
        for c in sorted(range(L), key=lambda c: (-float(v[c]), c)):
            cum += int(cost[c])
            if (cum <= remaining or float(v[c]) == INF) and cost[c] > 0:
                mask[:, c] |= causal[:, c]
        out[h] = mask
    return out


def slow_block_sparse(method, q, k, scaling) -> torch.Tensor:
    L, H = q.shape[-2], q.shape[1]
    bq, bk = method.q_block_size, method.block_size
    nqb, nkb = math.ceil(L / bq), math.ceil(L / bk)
    groups = H // k.shape[1]
    causal = causal_mask(L)
    budget = pair_budget(L, method.compression)

    def tile_pairs(i, j):
        return int(causal[i * bq : (i + 1) * bq, j * bk : (j + 1) * bk].sum())

    def tile_full(i, j):
        block = causal[i * bq : (i + 1) * bq, j * bk : (j + 1) * bk]
        return bool(block.all())

    def is_forced(i, j):  # partly causal (diagonal), a sink tile, or a local tile just before the diagonal
        first_diag = i * bq // bk
        local = first_diag - method.local_blocks <= j < first_diag
        return not tile_full(i, j) or j < method.sink_blocks or local

    ranked = []  # per head, per row: causal tiles by score, forced tiles first
    for h in range(H):
        pq = torch.stack([q[0, h, i * bq : (i + 1) * bq].mean(0) for i in range(nqb)])
        pk = torch.stack([k[0, h // groups, j * bk : (j + 1) * bk].mean(0) for j in range(nkb)])
        rows = []
        for i in range(nqb):
            cands = [j for j in range(nkb) if tile_pairs(i, j) > 0]
            score = {j: INF if is_forced(i, j) else float(pq[i] @ pk[j] * scaling) for j in cands}
            forced = sum(1 for j in cands if score[j] == INF)
            rows.append((sorted(cands, key=lambda j: (-score[j], j)), forced))
        ranked.append(rows)

    def pattern(kk):
        masks = torch.zeros(H, L, L, dtype=torch.bool)
        for h in range(H):
            for i, (cands, forced) in enumerate(ranked[h]):
                for j in cands[: max(forced, min(kk, len(cands)))]:
                    masks[h, i * bq : (i + 1) * bq, j * bk : (j + 1) * bk] = True
        return masks & causal

    totals = {kk: int(pattern(kk)[0].sum()) for kk in range(1, nkb + 1)}
    best = min(totals, key=lambda kk: (abs(totals[kk] - budget), kk))
    return pattern(best)


def slow_flexprefill(method, q, k, scaling) -> torch.Tensor:
    L, H = q.shape[-2], q.shape[1]
    bs, gamma = method.block_size, method.gamma
    nb = math.ceil(L / bs)
    groups = H // k.shape[1]
    n = min(method.last_q_size, L)
    min_blocks = math.ceil(method.min_budget / bs)
    causal = causal_mask(L)
    ti, tj = tile_ids(L, bs, bs)
    vertical, slash = vertical_slash_scores(q, k, scaling, n)
    out = torch.zeros(H, L, L, dtype=torch.bool)
    for h in range(H):
        v, s = vertical[0, h] / n, slash[0, h] / n

        def cover(x):
            cum = torch.cumsum(torch.sort(x, descending=True).values, 0)
            return int((cum <= gamma).sum()) + 1

        v_blk = torch.stack([v[j * bs : (j + 1) * bs].sum() for j in range(nb)])
        s_blk = torch.stack([s[t * bs : (t + 1) * bs].sum() for t in range(nb)])
        pk = torch.stack([k[0, h // groups, j * bs : (j + 1) * bs].mean(0) for j in range(nb)])
        estimate = torch.softmax(q[0, h, L - n :].mean(0) @ pk.T * scaling, 0)
        mid = (estimate + v_blk) / 2
        js = 0.5 * (estimate * (estimate / mid).log()).sum() + 0.5 * (v_blk * (v_blk / mid).log()).sum()
        query_aware = math.sqrt(max(float(js), 0.0)) < method.tau
        if query_aware:
            nv = ns = min(min_blocks, nb)
        else:
            nv = min(max(cover(v) // bs + 1, min_blocks), nb)
            ns = min(max(cover(s) // bs + 1, min_blocks), nb)
        v_blk[0] = s_blk[0] = INF
        cols = sorted(range(nb), key=lambda j: (-float(v_blk[j]), j))[:nv]
        diags = sorted(range(nb), key=lambda t: (-float(s_blk[t]), t))[:ns]
        mask = torch.isin(tj, torch.tensor(cols)) | torch.isin(ti - tj, torch.tensor(diags))
        if query_aware:
            pq = torch.stack([q[0, h, i * bs : (i + 1) * bs].mean(0) for i in range(nb)])
            probs = torch.zeros(nb, nb)
            for i in range(nb):
                probs[i, : i + 1] = torch.softmax(pq[i] @ pk[: i + 1].T * scaling, 0)
            order = sorted(range(nb * nb), key=lambda f: (-float(probs.flatten()[f]), f))
            cum = torch.cumsum(probs.flatten()[order].double(), 0)
            for f, c in zip(order, cum.tolist(), strict=True):
                if c <= gamma * nb:
                    mask |= (ti == f // nb) & (tj == f % nb)
        out[h] = mask & causal
    return out


# ----------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("compression", [2.0, 5.0])
@pytest.mark.parametrize(("L", "seed"), [(300, 1), (417, 2)])
def test_vertical_slash_matches_slow_rule(L, seed, compression):
    q, k, _ = qk(L, seed)
    method = get_method("vertical_slash", compression=compression, **SMALL["vertical_slash"])
    pattern = method.select(q, k, scaling=0.25, layer_idx=0)
    assert torch.equal(dense_mask(pattern)[0], slow_vertical_slash(method, q, k, 0.25))
    assert torch.equal(attended_pairs(pattern), dense_mask(pattern).sum((-1, -2)).double())  # its own count


@pytest.mark.parametrize("compression", [2.0, 4.0])
@pytest.mark.parametrize(("sink", "local"), [(1, 1), (0, 0)])  # the seed's forced tiles; the pre-audit rule
@pytest.mark.parametrize(
    ("L", "seed", "q_block", "kv_block"), [(300, 3, 32, 16), (417, 4, 16, 16), (417, 5, 16, 32)]
)
def test_block_sparse_matches_slow_rule(L, seed, q_block, kv_block, sink, local, compression):
    q, k, _ = qk(L, seed)
    method = get_method(
        "block_sparse",
        compression=compression,
        block_size=kv_block,
        q_block_size=q_block,
        sink_blocks=sink,
        local_blocks=local,
    )
    pattern = method.select(q, k, scaling=0.25, layer_idx=0)
    assert torch.equal(dense_mask(pattern)[0], slow_block_sparse(method, q, k, 0.25))


def test_block_sparse_wider_forced_tiles_match_slow_rule():
    q, k, _ = qk(333, 6)
    method = get_method(
        "block_sparse", compression=3.0, block_size=16, q_block_size=32, sink_blocks=2, local_blocks=3
    )
    pattern = method.select(q, k, scaling=0.25, layer_idx=0)
    assert torch.equal(dense_mask(pattern)[0], slow_block_sparse(method, q, k, 0.25))


@pytest.mark.parametrize("tau", [0.0, 0.3, 10.0])  # all vertical-slash, mixed, all query-aware
@pytest.mark.parametrize(("L", "seed", "gamma"), [(300, 5, 0.5), (417, 6, 0.8)])
def test_flexprefill_matches_slow_rule(L, seed, gamma, tau):
    q, k, _ = qk(L, seed)
    kwargs = {**SMALL["flexprefill"], "tau": tau, "gamma": gamma}
    method = get_method("flexprefill", **kwargs)
    pattern = method.select(q, k, scaling=0.25, layer_idx=0)
    assert torch.equal(dense_mask(pattern)[0], slow_flexprefill(method, q, k, 0.25))


@pytest.mark.parametrize("name", ["vertical_slash", "block_sparse", "flexprefill"])
def test_compression_one_selects_everything_and_equals_dense(name):
    q, k, v = qk(333, 7)
    method = get_method(name, compression=1, backend="reference", **SMALL[name])
    pattern = method.select(q, k, scaling=0.25, layer_idx=0)
    assert torch.equal(
        attended_pairs(pattern), torch.full((1, 4), float(causal_pairs(333)), dtype=torch.float64)
    )
    report = CompressionReport()
    out = method.prefill(q, k, v, layer_idx=0, scaling=0.25, stats=report.layer(0, "prefill"))
    torch.testing.assert_close(out, dense_attention(q, k, v, 0.25), rtol=1e-5, atol=1e-6)
    assert report.achieved_compression("prefill") == 1.0


@pytest.mark.parametrize("name", ["vertical_slash", "block_sparse"])
@pytest.mark.parametrize("compression", [2.0, 4.0, 8.0])
def test_fixed_budget_methods_reach_the_target_within_ten_percent(name, compression):
    q, k, v = qk(1024, 8)
    method = get_method(name, compression=compression, backend="reference", **SMALL[name])
    report = CompressionReport()
    method.prefill(q, k, v, layer_idx=0, scaling=0.25, stats=report.layer(0, "prefill"))
    for achieved in report.per_head("prefill")[0]:
        assert achieved == pytest.approx(compression, rel=0.10)


@pytest.mark.parametrize("tau", [0.0, 0.3, 10.0])
def test_flexprefill_solves_gamma_to_fit_the_budget(tau):
    q, k, _ = qk(1024, 9)
    achieved = []
    for compression in (2.0, 4.0, 8.0):
        method = get_method("flexprefill", compression=compression, tau=tau, **SMALL["flexprefill"])
        pairs = attended_pairs(method.select(q, k, scaling=0.25, layer_idx=0)).sum()
        assert pairs <= pair_budget(1024, compression) * 4  # the layer fits its budget...
        achieved.append(causal_pairs(1024) * 4 / float(pairs))
    for got, target in zip(achieved, (2.0, 4.0, 8.0), strict=True):
        assert target <= got <= target * 1.5  # ...without wasting much of it


def test_sparse_output_differs_from_dense_and_matches_masked_reference():
    q, k, v = qk(300, 10)
    for name in SMALL:
        method = get_method(name, compression=4, backend="reference", **SMALL[name])
        out = method.prefill(
            q, k, v, layer_idx=0, scaling=0.25, stats=CompressionReport().layer(0, "prefill")
        )
        mask = dense_mask(method.select(q, k, scaling=0.25, layer_idx=0))
        scores = (q @ k.repeat_interleave(2, 1).transpose(-1, -2)) * 0.25
        expected = torch.softmax(scores.masked_fill(~mask, -INF), -1) @ v.repeat_interleave(2, 1)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(out, dense_attention(q, k, v, 0.25), atol=1e-3)


@pytest.mark.parametrize(("gamma", "scaling"), [(0.9, 100.0), (1.0, 100.0), (1.0, 0.25), (0.5, 0.25)])
def test_flexprefill_sorting_only_causal_tiles_equals_sorting_all(gamma, scaling, monkeypatch):
    """Scaling 100: sharp pooled softmaxes, 90-218 causal tiles of probability 0 per head; gamma 1: the
    prefix reaches the zeros in two of the four heads. Sorting every tile (the plain rule) takes the same."""
    from sparse_eval.methods import flexprefill_rule as flexprefill

    q, k, _ = qk(417, 12)
    method = get_method("flexprefill", **{**SMALL["flexprefill"], "tau": 10.0, "gamma": gamma})
    packed = method.select(q, k, scaling=scaling, layer_idx=0)
    tables = flexprefill._shape_tables

    def every_tile(L, bs, device):
        col_w, diag_w, overlap, _, _ = tables(L, bs, device)
        every = torch.arange(math.ceil(L / bs) ** 2)
        return col_w, diag_w, overlap, every, flexprefill.tile_parts(every, L, bs, device)

    monkeypatch.setattr(flexprefill, "_shape_tables", every_tile)
    plain = method.select(q, k, scaling=scaling, layer_idx=0)
    assert torch.equal(packed.blocks, plain.blocks & causal_tiles(417, 16))
    assert torch.equal(attended_pairs(packed), attended_pairs(plain))
