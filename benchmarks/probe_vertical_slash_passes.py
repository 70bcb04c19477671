"""Where vertical_slash's prefill time goes on the GPU, and one alternative measured against it.

Today the exact columns are excluded from the tile pass (a column mask in nearly every tile) and the column
pass attends every column at or after each query. The alternative moves the exclusion: the tile pass runs
mask-free and the column pass skips the (query, column) pairs already inside a selected tile. Both
partition the same pairs (the relative difference of the outputs is printed). Times each pass alone, the
two-pass attention both ways, selection and the whole prefill, at 128k and c = 5 / 10 / 20 (28/4 heads, d 128,
bf16). Needs a CUDA GPU; FLASH where `longtasks[flash]` is installed.

    python benchmarks/probe_vertical_slash_passes.py --out $OUT   # results/probe_vertical_slash_passes_h200.json
"""

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_attention import bench_ms, prefill_layers, qkv

from sparse_eval.backends import flex as F
from sparse_eval.backends import run_pattern
from sparse_eval.backends.flash import dense_causal
from sparse_eval.backends.flex import _block_mask, _call, _causal, _kernel_options, selected_first
from sparse_eval.backends.pattern import BlockPattern
from sparse_eval.fidelity.runner import MethodSpec

D = 128


def column_pass_excl(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Column pass that skips the (query, column) pairs already inside a selected tile."""
    Lq, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    B, Hq = query.shape[:2]
    CB = F.COLUMN_BLOCK
    cols, k_cols, v_cols, n_any, n_full = F.gathered_columns(key, value, pattern, Hq)
    n_cols = cols.shape[-1]
    nkb = pattern.num_kv_blocks
    n_tiles = n_cols // CB
    # covered[b, h, i, t]: columns of column tile t inside a selected tile of query tile i
    jb = (cols // bk).clamp(max=nkb)  # padding -> nkb (dropped)
    M = torch.zeros(B, Hq, n_tiles, nkb + 1, dtype=torch.float16, device=cols.device)
    M.scatter_add_(
        -1,
        jb.view(B, Hq, n_tiles, CB),
        torch.ones(B, Hq, n_tiles, CB, dtype=torch.float16, device=cols.device),
    )
    covered = torch.matmul(pattern.blocks.to(torch.float16), M[..., :nkb].transpose(-1, -2)) > 0
    t = torch.arange(n_tiles, device=cols.device)
    full_sel = (t < n_full[..., None]) & ~covered
    part_sel = (t < n_any[..., None]) & ~full_sel
    pn, pi = selected_first(part_sel)
    fn_, fi = selected_first(full_sel)
    cols_i = cols.to(torch.int32)
    blk = pattern.blocks.to(torch.int32).contiguous()

    def at_or_after_uncovered(
        b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
    ) -> torch.Tensor:
        c = cols_i[b, h, kv_idx]
        return (c <= q_idx) & (blk[b, h, q_idx // bq, c // bk] == 0)

    mask = _block_mask(pn, pi, fn_, fi, (bq, CB), at_or_after_uncovered, (Lq, n_cols))
    opts = _kernel_options(bq, CB, query.device)
    return _call(query, k_cols, v_cols, mask, scaling, False, opts, lse=True, kind="column pass")


def tile_pass_plain(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pattern's tiles alone, columns not excluded (no column mask), with the log-sum-exp."""
    Lq, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    tiles_only = BlockPattern(Lq, bq, bk, pattern.blocks)
    mask = _block_mask(*F._tile_indices(tiles_only), (bq, bk), _causal, (Lq, Lq))
    gqa = query.shape[1] != key.shape[1]
    return _call(
        query, key, value, mask, scaling, gqa, _kernel_options(bq, bk, query.device), lse=True, kind="tiles"
    )


def tile_pass_score_mod(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tile pass with the columns excluded by a score_mod (-inf on column keys) instead of a mask_mod, so
    only the diagonal tiles are partial blocks: is the per-element exclusion cheaper as a score
    modification? Same pairs as `_tile_pass`. FLASH directly (no Triton fallback: this is a probe)."""
    Lq, bq, bk = pattern.seq_len, pattern.q_block, pattern.kv_block
    is_col = pattern.column_flags().to(torch.int32).contiguous()
    tiles_only = BlockPattern(Lq, bq, bk, pattern.blocks)
    mask = _block_mask(*F._tile_indices(tiles_only), (bq, bk), _causal, (Lq, Lq))

    def drop_columns(
        score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
    ) -> torch.Tensor:
        return torch.where(is_col[b, h, kv_idx] == 0, score, float("-inf"))

    gqa = query.shape[1] != key.shape[1]
    out, lse = F._flex_flash()(
        query, key, value, score_mod=drop_columns, block_mask=mask, scale=scaling, enable_gqa=gqa,
        return_lse=True, kernel_options={"BACKEND": "FLASH"},
    )  # fmt: skip
    return out, lse


def vs_variant(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: BlockPattern, scaling: float
) -> torch.Tensor:
    """The alternative two-pass attention: mask-free tile pass, column pass without the covered pairs."""
    out, lse = tile_pass_plain(query, key, value, pattern, scaling)
    co, cl = column_pass_excl(query, key, value, pattern, scaling)
    return F._merge(out, lse, co, cl)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--length", type=int, default=131072)
    parser.add_argument("--compressions", nargs="*", type=float, default=[5.0, 10.0, 20.0])
    parser.add_argument("--out", default="bench_out")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("probe_vertical_slash_passes.py needs a CUDA GPU", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    q, k, v = qkv(args.length)
    scaling = D**-0.5
    fa4 = (
        bench_ms(lambda: dense_causal(q, k, v, scaling), 200)
        if dense_causal(q, k, v, scaling) is not None
        else None
    )
    rows: list[dict[str, object]] = []
    res: dict[str, object] = {"L": args.length, "fa4_ms": fa4, "torch": torch.__version__, "rows": rows}
    for c in args.compressions:
        m = MethodSpec.parse("vertical_slash").build(c, backend="flex")
        prefill_layers(m, q, k, v)
        torch.cuda.synchronize()
        pat = m.select(q, k, scaling=scaling, layer_idx=0)
        ref = run_pattern(q, k, v, pat, scaling, "flex").float()
        new = vs_variant(q, k, v, pat, scaling).float()
        row = {
            "c": c,
            "total": bench_ms(partial(prefill_layers, m, q, k, v), 300),
            "select": bench_ms(partial(m.select, q, k, scaling=scaling, layer_idx=0), 150),
            "attn": bench_ms(partial(run_pattern, q, k, v, pat, scaling, "flex"), 300),
            "n_cols_max": pat.columns.shape[-1],
            "tile_pass": bench_ms(partial(F._tile_pass, q, k, v, pat, scaling), 200),
            "col_pass": bench_ms(partial(F._column_pass, q, k, v, pat, scaling), 200),
            "tile_plain": bench_ms(partial(tile_pass_plain, q, k, v, pat, scaling), 200),
            "col_excl": bench_ms(partial(column_pass_excl, q, k, v, pat, scaling), 200),
            "variant_attn": bench_ms(partial(vs_variant, q, k, v, pat, scaling), 300),
            "variant_rel_err": float((ref - new).norm() / ref.norm()),
            "kernels": dict(F.backend_counts),
        }
        try:  # the score_mod form of the tile pass, against the mask_mod one
            ref_out, ref_lse = F._tile_pass(q, k, v, pat, scaling)
            sm_out, sm_lse = tile_pass_score_mod(q, k, v, pat, scaling)
            row["tile_score_mod"] = bench_ms(partial(tile_pass_score_mod, q, k, v, pat, scaling), 200)
            row["score_mod_rel_err"] = float(
                (ref_out.float() - sm_out.float()).norm() / ref_out.float().norm()
            )
            factor = F._flash_lse_factor(q) or 1.0  # as `_call` rescales FLASH's log-sum-exp
            row["score_mod_lse_max_diff"] = float((ref_lse.float() - factor * sm_lse.float()).abs().max())
        except Exception as error:  # FLASH may refuse a score_mod with a captured tensor
            row["tile_score_mod_error"] = f"{type(error).__name__}: {str(error)[:300]}"
        F.backend_counts.clear()
        print(json.dumps(row), flush=True)
        rows.append(row)
        (out_dir / "probe_vertical_slash_passes.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
