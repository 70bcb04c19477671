"""The one-call form of a tiles + columns pattern (`sparse_eval.backends.gathered`): per-query-tile key lists
that end with the tile's diagonal keys. Checked on CPU against the plain rule:
  * the lists, attended with a bottom-right causal mask (FA4's), give the pattern's attention and pairs;
  * `key_list_lengths` gives the lists' lengths and sees a missing diagonal tile;
  * the Triton kernel writes exactly the plain lists (compiled on CUDA, else under triton's interpreter;
    skipped where triton is not installed, as in CI), for any key layout and row chunk.
FA4 itself needs a Hopper GPU: `benchmarks/bench_attention.py --check` compares it with the reference there."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sparse_eval import get_method
from sparse_eval.backends import gathered
from sparse_eval.backends.pattern import BlockPattern, attended_pairs
from sparse_eval.backends.reference import reference_attention
from tests.sparse.triton_kernels import kernel_module

SHAPES = [  # (L, q_block, block_size, heads q/kv, batch): the default 128 x 64, square tiles, ragged ends
    (1000, 128, 64, (4, 2), 1),
    (700, 64, 64, (2, 1), 2),
    (520, 64, 16, (3, 3), 1),
]


def plain_lists(pattern: BlockPattern) -> list[list[int]]:
    """Key positions per (b, h, i) row, in the documented order: the uncovered columns before the tile, the
    selected tiles wholly before it, then the tile's own keys. Loops, no tensor tricks."""
    L, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    blocks = pattern.blocks.tolist()
    flags = pattern.column_flags().tolist()
    out = []
    for b, heads in enumerate(blocks):
        for h, grid in enumerate(heads):
            for i, row in enumerate(grid):
                start = i * bq
                cols = [c for c in range(start) if flags[b][h][c] and not row[c // bk]]
                tiles = [p for j in range(start // bk) if row[j] for p in range(j * bk, (j + 1) * bk)]
                out.append(cols + tiles + list(range(start, min(start + bq, L))))
    return out


def vertical_slash_pattern(L: int, bq: int, bk: int, heads: tuple[int, int], batch: int, c: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads[0], L, 16, generator=g)
    k, v = (torch.randn(batch, heads[1], L, 16, generator=g) for _ in "kv")
    method = get_method(
        "vertical_slash", compression=c, q_block_size=bq, block_size=bk, last_q_size=64, n_local=8
    )
    return q, k, v, method.select(q, k, scaling=0.25, layer_idx=0)


def attend_lists(q, k, v, lists, bq, scaling):
    """Each row's queries over its listed keys with a bottom-right causal mask, as FA4 runs them."""
    Hq, L = q.shape[1:3]
    groups = Hq // k.shape[1]
    nqb = -(-L // bq)
    out = torch.empty_like(q)
    for r, keys in enumerate(lists):
        b, h, i = r // (Hq * nqb), (r // nqb) % Hq, r % nqb
        rows = slice(i * bq, min((i + 1) * bq, L))
        n_q, n_k = rows.stop - rows.start, len(keys)
        idx = torch.tensor(keys)
        scores = q[b, h, rows] @ k[b, h // groups, idx].T * scaling
        bottom_right = torch.arange(n_k)[None, :] <= torch.arange(n_q)[:, None] + (n_k - n_q)
        weights = scores.masked_fill(~bottom_right, float("-inf")).softmax(-1)
        out[b, h, rows] = weights @ v[b, h // groups, idx]
    return out


@pytest.mark.parametrize(("L", "bq", "bk", "heads", "batch"), SHAPES)
@pytest.mark.parametrize("c", [2.0, 6.0])
def test_the_lists_with_a_bottom_right_causal_mask_are_the_pattern(L, bq, bk, heads, batch, c):
    q, k, v, pattern = vertical_slash_pattern(L, bq, bk, heads, batch, c, seed=int(c) + L)
    assert pattern.column_flags().any(), "the case must hold exact columns"
    lists = plain_lists(pattern)
    for keys in lists:
        assert len(set(keys)) == len(keys)
    got = attend_lists(q, k, v, lists, bq, 0.25)
    torch.testing.assert_close(got, reference_attention(q, k, v, pattern, 0.25), rtol=1e-5, atol=1e-5)
    nqb = pattern.num_q_blocks
    rows_here = [min(bq, L - (r % nqb) * bq) for r in range(len(lists))]
    pairs = sum((len(keys) - n) * n + n * (n + 1) // 2 for keys, n in zip(lists, rows_here, strict=True))
    assert pairs == int(attended_pairs(pattern).sum())


@pytest.mark.parametrize(("L", "bq", "bk", "heads", "batch"), SHAPES)
@pytest.mark.parametrize("seed", range(3))
def test_lengths_match_the_lists_and_see_a_missing_diagonal_tile(L, bq, bk, heads, batch, seed):
    *_, pattern = vertical_slash_pattern(L, bq, bk, heads, batch, 4.0, seed)
    lengths, n_before, missing = gathered.key_list_lengths(pattern)
    lists = plain_lists(pattern)
    assert lengths.tolist() == [len(keys) for keys in lists]
    flags = pattern.column_flags().reshape(-1, L)
    nqb = pattern.num_q_blocks
    assert n_before.tolist() == [int(flags[r // nqb, : (r % nqb) * bq].sum()) for r in range(len(lists))]
    assert int(missing) == 0
    blocks = pattern.blocks.clone()
    blocks[0, 0, nqb - 1, (nqb - 1) * (bq // bk)] = False  # the last row's first diagonal tile
    holed = BlockPattern(L, bq, bk, blocks, column_mask=pattern.column_flags())
    assert int(gathered.key_list_lengths(holed)[2]) == 1


@settings(max_examples=25, deadline=None)
@given(
    L=st.integers(1, 300),
    tiles=st.sampled_from([(32, 16), (32, 32), (64, 16), (48, 16)]),
    tile_density=st.floats(0.0, 1.0),
    column_density=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
)
def test_any_tiles_and_columns_pattern_with_its_diagonal_tiles_is_its_lists(
    L, tiles, tile_density, column_density, seed
):
    """Not only vertical_slash's: any grid of tiles holding every diagonal tile, and any exact columns."""
    bq, bk = tiles
    g = torch.Generator().manual_seed(seed)
    nqb, nkb = -(-L // bq), -(-L // bk)
    blocks = torch.rand(1, 2, nqb, nkb, generator=g) < tile_density
    ratio = bq // bk
    for i in range(nqb):
        blocks[..., i, ratio * i : min(ratio * i + ratio, nkb)] = True
    flags = torch.rand(1, 2, L, generator=g) < column_density
    pattern = BlockPattern(L, bq, bk, blocks, column_mask=flags)
    q = torch.randn(1, 2, L, 8, generator=g)
    k, v = (torch.randn(1, 1, L, 8, generator=g) for _ in "kv")
    lists = plain_lists(pattern)
    lengths, _, missing = gathered.key_list_lengths(pattern)
    assert lengths.tolist() == [len(keys) for keys in lists] and int(missing) == 0
    got = attend_lists(q, k, v, lists, bq, 0.5)
    torch.testing.assert_close(got, reference_attention(q, k, v, pattern, 0.5), rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(
    L=st.integers(1, 400),
    tiles=st.sampled_from([(128, 64), (64, 64), (64, 16), (32, 16)]),
    c=st.floats(1.5, 30.0),
    n_local=st.integers(0, 40),
    n_sinks=st.integers(0, 8),
    seed=st.integers(0, 2**16),
)
def test_vertical_slash_promises_its_diagonal_tiles_only_when_it_selects_them(
    L, tiles, c, n_local, n_sinks, seed
):
    """The promise lets the one-call form skip its host read, so it must never be wrong: with n_local >= 1
    every diagonal tile is selected; with n_local = 0 nothing is promised."""
    assume(n_local >= 1 or n_sinks >= 1)  # with neither the method refuses the settings
    bq, bk = tiles
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 2, L, 16, generator=g)
    k = torch.randn(1, 1, L, 16, generator=g)
    method = get_method(
        "vertical_slash", compression=c, q_block_size=bq, block_size=bk, last_q_size=32, n_local=n_local,
        n_sinks=n_sinks,
    )  # fmt: skip
    pattern = method.select(q, k, scaling=0.25, layer_idx=0)
    assert pattern.diagonal_tiles_held == (n_local >= 1)
    if pattern.diagonal_tiles_held:
        assert int(gathered.key_list_lengths(pattern)[2]) == 0


@pytest.mark.parametrize("L", [700, 2500])  # one scan block, and several (prefix sums in blocks of 1024)
def test_the_column_list_and_counts_before_each_row_need_no_count(L):
    *_, pattern = vertical_slash_pattern(L, 64, 64, (2, 1), 2, 4.0, seed=1)
    columns, n_before = gathered.columns_before_rows(pattern.column_flags(), 64)
    count = pattern.columns.shape[-1]
    assert columns.shape == (*pattern.batch_heads, L)
    assert columns.dtype == torch.int32 and (columns[..., count:] == L).all()
    assert torch.equal(columns[..., :count].long(), pattern.columns)
    assert torch.equal(n_before, gathered.key_list_lengths(pattern)[1])


def test_the_one_call_form_is_not_tried_on_the_cpu():
    q, k, v, pattern = vertical_slash_pattern(300, 64, 16, (2, 1), 1, 3.0, 0)
    assert not gathered.applicable(q.bfloat16(), pattern)
    assert gathered.attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), pattern, 0.25) is None


@pytest.fixture(scope="module")
def kernels() -> Iterator[ModuleType]:
    def smoke(module: ModuleType) -> None:
        table = torch.zeros(1, 16, dtype=torch.int32)
        blocks = torch.ones(1, 1, 1, 1, dtype=torch.bool)
        module.fill_key_lists(
            table, torch.zeros(1, dtype=torch.int32), 0, torch.zeros(1, 1, 1, dtype=torch.long),
            torch.zeros(1, dtype=torch.int32), blocks, torch.zeros(1, dtype=torch.long), 1, 16, 16, 16,
        )  # fmt: skip

    yield from kernel_module("sparse_eval.kernels.key_lists", smoke)


@pytest.mark.parametrize(("L", "bq", "bk", "heads", "batch"), SHAPES)
@pytest.mark.parametrize("layout", ["contiguous", "sequence major", "no columns"])
def test_the_kernel_writes_the_plain_lists(kernels, L, bq, bk, heads, batch, layout):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    _, k, v, pattern = vertical_slash_pattern(L, bq, bk, heads, batch, 3.0, seed=L)
    if layout == "no columns":  # flags given, none set: an empty column list
        pattern = BlockPattern(
            L, bq, bk, pattern.blocks, column_mask=torch.zeros_like(pattern.column_flags())
        )
    if layout == "sequence major":  # (B, L, H, D) memory, as projections produce before the transpose
        k = k.transpose(1, 2).contiguous().transpose(1, 2)
        v = v.transpose(1, 2).contiguous().transpose(1, 2)
    k, v = k.to(device), v.to(device)
    pattern = BlockPattern(
        L, bq, bk, pattern.blocks.to(device), column_mask=pattern.column_flags().to(device)
    )
    lengths, n_before, _ = gathered.key_list_lengths(pattern)
    k_pages, _, page_base, page_stride = gathered._pages(k, v, heads[0])
    lists = plain_lists(pattern)
    nqb, rows = pattern.num_q_blocks, len(lists)
    # The whole table as the form without a host read sizes it (L wide, the columns in an L-wide list), and
    # a chunk of rows as the form that reads the longest list and the column count back.
    wide_columns, _ = gathered.columns_before_rows(pattern.column_flags(), bq)
    forms = ((0, rows, L, wide_columns), (1, rows - 1, int(lengths.max()), pattern.columns))
    for row0, row1, width, columns in forms:
        table = torch.full((row1 - row0, width), -1, dtype=torch.int32, device=device)
        written = torch.full((rows,), -1, dtype=torch.int32, device=device)
        kernels.fill_key_lists(
            table, written, row0, columns, n_before, pattern.blocks, page_base, page_stride, L, bq, bk
        )
        assert written[row0:row1].tolist() == [len(keys) for keys in lists[row0:row1]]
        assert (written[:row0] == -1).all() and (written[row1:] == -1).all()
        for r in range(row0, row1):
            b, h = r // (heads[0] * nqb), (r // nqb) % heads[0]
            pages = table[r - row0, : len(lists[r])].long()
            assert torch.equal(k_pages[pages, 0, 0], k[b, h // (heads[0] // heads[1]), lists[r]]), r
            assert (table[r - row0, len(lists[r]) :] == -1).all()


@pytest.mark.parametrize("L", [256, 300])
def test_query_rows_are_the_tiles_with_the_real_row_counts(L):
    q = torch.randn(2, 3, L, 8)
    rows, used = gathered._query_rows(q, 128)
    nqb = -(-L // 128)
    assert rows.shape == (2 * 3 * nqb, 128, 1, 8)
    for r in range(rows.shape[0]):
        b, h, i = r // (3 * nqb), (r // nqb) % 3, r % nqb
        n = min(128, L - i * 128)
        assert torch.equal(rows[r, :n, 0], q[b, h, i * 128 : i * 128 + n])
        assert used is None if L % 128 == 0 else int(used[r]) == n


class _PlainKernels:
    """`key_lists.fill_key_lists` as plain Python (the plain lists), for running the orchestration on CPU."""

    def __init__(self, pattern: BlockPattern, page_base: torch.Tensor, page_stride: int) -> None:
        self.lists, self.page_base, self.page_stride = plain_lists(pattern), page_base, page_stride
        self.per_head = pattern.num_q_blocks

    def fill_key_lists(self, table, lengths, row0, *args) -> None:
        for r in range(row0, row0 + table.shape[0]):
            base = int(self.page_base[r // self.per_head])
            keys = torch.tensor(self.lists[r]) * self.page_stride + base
            table[r - row0, : len(keys)] = keys.to(torch.int32)
            lengths[r] = len(keys)


def _paged_attention(
    q, k_pages, v_pages, *, seqused_q, seqused_k, page_table, softmax_scale, causal, out=None
):
    """FA4's paged varlen forward as plain torch: each row's queries over its listed keys, causal aligned
    bottom-right; rows past a sequence's used queries stay zero."""
    assert causal
    result = torch.zeros_like(q) if out is None else out
    for r in range(q.shape[0]):
        n_q = q.shape[1] if seqused_q is None else int(seqused_q[r])
        n_k = int(seqused_k[r])
        pages = page_table[r, :n_k].long()
        keys, values = k_pages[pages, 0, 0].float(), v_pages[pages, 0, 0].float()
        scores = q[r, :n_q, 0].float() @ keys.T * softmax_scale
        allowed = torch.arange(n_k)[None, :] <= torch.arange(n_q)[:, None] + (n_k - n_q)
        weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
        result[r, :n_q, 0] = (weights @ values).to(q.dtype)
        result[r, n_q:, 0] = 0
    return result


@pytest.mark.parametrize("into", [True, False], ids=["chunks into one output", "public function, joined"])
@pytest.mark.parametrize("host_reads", [False, True], ids=["no host read", "host read"])
def test_the_one_call_orchestration_runs_row_chunks_into_the_right_rows(monkeypatch, into, host_reads):
    """The GPU path's bookkeeping on CPU, with FA4 and the fill kernel replaced by plain versions: row
    chunks of a small table cap, the lengths the fill writes, a ragged last tile, a batch of two, and both
    ways of collecting the chunks' outputs. The result must be the pattern's attention."""
    L, bq, bk, heads = 300, 64, 32, (4, 2)
    g = torch.Generator().manual_seed(7)
    nqb, nkb = -(-L // bq), -(-L // bk)
    blocks = torch.rand(2, heads[0], nqb, nkb, generator=g) < 0.3
    for i in range(nqb):  # the promise: every diagonal tile held
        blocks[..., i, 2 * i : min(2 * i + 2, nkb)] = True
    flags = torch.rand(2, heads[0], L, generator=g) < 0.2
    pattern = BlockPattern(L, bq, bk, blocks, column_mask=flags, diagonal_tiles_held=True)
    q = torch.randn(2, heads[0], L, 64, generator=g).bfloat16()  # head dim 64: FA4's smallest
    k, v = (torch.randn(2, heads[1], L, 64, generator=g).bfloat16() for _ in "kv")
    lengths = gathered.key_list_lengths(pattern)[0]
    assert len(set(lengths.tolist())) > 10, "the rows' lists must differ for a misplaced chunk to show"
    _, _, page_base, page_stride = gathered._pages(k, v, heads[0])
    monkeypatch.setattr(gathered, "optional", lambda name: _PlainKernels(pattern, page_base, page_stride))
    monkeypatch.setattr(gathered.flash, "usable", lambda device: True)
    monkeypatch.setattr(gathered, "host_reads", host_reads)
    monkeypatch.setattr(gathered, "_forward_into", lambda: _paged_attention if into else None)
    width = int(lengths.max()) if host_reads else L
    monkeypatch.setattr(gathered, "TABLE_BYTES", 4 * width * 3)  # 3 rows per chunk: chunks straddle heads
    cute = ModuleType("flash_attn.cute")
    cute.flash_attn_varlen_func = lambda *a, **kw: (_paged_attention(*a, **kw), None)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flash_attn", ModuleType("flash_attn"))
    monkeypatch.setitem(sys.modules, "flash_attn.cute", cute)
    got = gathered.attention(q, k, v, pattern, 0.25)
    assert got is not None, "the one-call form gave up (see flash.record_failure's warning)"
    want = reference_attention(q.float(), k.float(), v.float(), pattern, 0.25)
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)
