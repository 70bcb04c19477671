"""Batched generation (issue 12 item 1): a left-padded batch of prompts of different lengths gives, for every
method, the greedy tokens and the compression report of running each prompt alone; padded positions are
never selected, counted or kept; right-padded scoring rows match too; misuse is refused with a clear line."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

import sparse_eval
from sparse_eval import generate
from sparse_eval.compression import CompressionReport
from sparse_eval.generation import _cache_kwarg, greedy_decode_batch

pytestmark = [
    pytest.mark.filterwarnings("ignore::sparse_eval.compression.CompressionShortfallWarning"),
    pytest.mark.filterwarnings("ignore:KV capacity:RuntimeWarning"),
]

LENGTHS = (72, 23, 57, 40)  # different lengths, so three of the four rows are left-padded
MAX_NEW = 5

# Small tiles and budgets so that every method really drops pairs / tokens at these lengths.
METHODS = {
    "dense": {},
    "vertical_slash": dict(
        compression=3, last_q_size=16, n_sinks=2, n_local=8, q_block_size=16, block_size=16
    ),
    "block_sparse": dict(compression=3),
    "flexprefill": dict(compression=2, min_budget=16, last_q_size=16, block_size=16),
    "quest": dict(compression=3, page_size=4),
    "snapkv": dict(compression=3, window=8, pool_kernel=3, sink=2, local=4),
    "ada_snapkv": dict(compression=3, window=8, pool_kernel=3, sink=2, local=4, floor=0.2),
}


def prompts(vocab: int = 101) -> list[torch.Tensor]:
    return [
        torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(10 + i))
        for i, n in enumerate(LENGTHS)
    ]


def totals(report: CompressionReport) -> dict[tuple[str, int], tuple[float, float]]:
    return {key: stats.totals() for key, stats in sorted(report.layers.items()) if stats.calls}


@pytest.mark.parametrize("method", list(METHODS))
def test_batch_equals_each_prompt_alone(build_tiny_lm, method):
    """Same greedy tokens, stop reasons and positions as batch-1 runs; each row's report equals its batch-1
    report exactly (per phase, layer and head), so no padded pair or token is counted; the session's report
    is the sum of the batch-1 runs. One row stops early on an eos token: its later steps are not counted."""
    model = build_tiny_lm("llama")
    kwargs = dict(backend="reference", **METHODS[method])
    rows = prompts()
    first = generate(model, rows[1], method, max_new_tokens=MAX_NEW, eos_token_id=[], **kwargs)
    eos = [first.tokens[1]]  # row 1 stops at its second token, the others (most likely) run to the end
    alone = [generate(model, p, method, max_new_tokens=MAX_NEW, eos_token_id=eos, **kwargs) for p in rows]
    assert alone[1].stop_reason == "eos" and len(alone[1].tokens) == 2
    with sparse_eval.apply(model, method, **kwargs) as session:
        batched = greedy_decode_batch(model, rows, session, max_new_tokens=MAX_NEW, eos_token_id=eos)
    for single, (tokens, reason, _, positions, report) in zip(alone, batched, strict=True):
        assert tokens == single.tokens
        assert reason == single.stop_reason
        assert positions == single.positions
        assert report is not None and report.to_dict() == single.report.to_dict()
    expected = CompressionReport()
    for single in alone:
        expected.merge(single.report)
    assert totals(session.report) == totals(expected)
    phase = session.method.phase
    if method != "dense":  # the test means something: the method dropped pairs / tokens in its phase
        assert session.report.achieved_compression(phase) > 1.1


def test_generate_takes_lists_masks_and_batch_sizes(build_tiny_lm):
    """generate() returns one result per prompt for a list, a padded (B, L) tensor with its attention_mask,
    or a list split into batches of `batch_size`; single prompts still give a single result (Qwen2 here)."""
    model = build_tiny_lm("qwen2")
    rows = prompts()
    kwargs = dict(max_new_tokens=3, eos_token_id=[], backend="reference", compression=2, window=8, local=4)
    alone = [generate(model, p, "snapkv", **kwargs).tokens for p in rows]
    assert [r.tokens for r in generate(model, rows, "snapkv", **kwargs)] == alone
    assert [r.tokens for r in generate(model, rows, "snapkv", batch_size=3, **kwargs)] == alone
    width = max(LENGTHS)
    ids = torch.full((len(rows), width), 7)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, width - len(row) :], mask[b, width - len(row) :] = row, 1
    assert [r.tokens for r in generate(model, ids, "snapkv", attention_mask=mask, **kwargs)] == alone
    assert isinstance(generate(model, rows[0][None], "snapkv", **kwargs), sparse_eval.GenerationResult)


@pytest.mark.parametrize("method", ["vertical_slash", "block_sparse", "flexprefill", "snapkv", "ada_snapkv"])
def test_padded_positions_are_never_seen(build_tiny_lm, method):
    """Inside `session.batch`, what the pad tokens are changes nothing at the real positions (they are never
    attended); each row's method sees only the row's real length; kept KV slots of a row are -1 or real
    positions of that row, never its padding."""
    model = build_tiny_lm("llama")
    rows = prompts()
    width = max(LENGTHS)
    pads = [width - n for n in LENGTHS]
    real = torch.arange(width)[None, :] >= torch.tensor(pads)[:, None]
    positions = (torch.arange(width)[None, :] - torch.tensor(pads)[:, None]).clamp_min(0)

    def run(pad_ids: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor], list[list[int]]]:
        ids = pad_ids.clone()
        for b, row in enumerate(rows):
            ids[b, pads[b] :] = row
        seen: list[list[int]] = [[] for _ in rows]
        with sparse_eval.apply(model, method, backend="reference", **METHODS[method]) as session:
            with session.batch(real) as batch, torch.no_grad():
                for b, row_method in enumerate(batch.methods):
                    original = row_method.prefill

                    def spy(query, *args, _b=b, _original=original, **kwargs):
                        seen[_b].append(query.shape[-2])
                        return _original(query, *args, **kwargs)

                    row_method.prefill = spy  # type: ignore[method-assign]
                logits = model(input_ids=ids, position_ids=positions).logits
            kept = dict(session.pending_kv)
            session.pending_kv.clear()
        return logits, kept, seen

    zeros, kept, seen = run(torch.zeros(len(rows), width, dtype=torch.long))
    noise, _, _ = run(torch.randint(0, 101, (len(rows), width), generator=torch.Generator().manual_seed(99)))
    assert torch.equal(zeros[real], noise[real])
    assert seen == [[n] * 2 for n in LENGTHS]  # two layers, each row its own real length
    if session_is_kv := method in ("snapkv", "ada_snapkv"):
        assert set(kept) == {0, 1}
        for indices in kept.values():
            for b, pad in enumerate(pads):
                row = indices[b]
                assert bool(((row == -1) | ((row >= pad) & (row < width))).all())
                assert int((row >= 0).sum()) < LENGTHS[b] * row.shape[0]  # something was dropped
    assert session_is_kv == bool(kept)


def test_right_padded_rows_score_like_single_rows(build_tiny_lm):
    """Loglikelihood batches are right-padded: logits at each row's real positions equal its batch-1 run and
    the rows' reports equal batch-1 reports; decoding after right-padded rows is refused."""
    model = build_tiny_lm("llama")
    rows = prompts()
    width = max(LENGTHS)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = row
    real = torch.arange(width)[None, :] < torch.tensor(LENGTHS)[:, None]
    kwargs = dict(backend="reference", **METHODS["vertical_slash"])
    with torch.no_grad():
        singles = []
        for row in rows:
            with sparse_eval.apply(model, "vertical_slash", **kwargs) as session:
                singles.append((model(row[None]).logits[0], session.report))
        with sparse_eval.apply(model, "vertical_slash", **kwargs) as session:
            with session.batch(real) as batch:
                logits = model(ids).logits
            for b, (expected, report) in enumerate(singles):
                torch.testing.assert_close(logits[b, : LENGTHS[b]], expected, atol=1e-5, rtol=1e-5)
                assert batch.reports[b].to_dict() == report.to_dict()
            cache = {_cache_kwarg(model): DynamicCache(config=model.config), "use_cache": True}
            with session.batch(real), pytest.raises(NotImplementedError, match="right-padded"):
                model(ids, **cache)
                model(ids[:, :1], **cache)


def test_batches_without_a_layout_and_bad_layouts_are_refused(build_tiny_lm, token_ids):
    model = build_tiny_lm("llama")
    ids = torch.cat([token_ids(16), token_ids(16, seed=1)])
    with sparse_eval.apply(model, "dense") as session:
        with pytest.raises(ValueError, match="without a padding layout"):
            model(ids)
        with (
            pytest.raises(ValueError, match="one run at the start"),
            session.batch(torch.tensor([[1, 0, 1], [1, 1, 1]])),
        ):
            pass
        with (
            pytest.raises(ValueError, match="no real token"),
            session.batch(torch.tensor([[0, 0, 0], [1, 1, 1]])),
        ):
            pass
        with (
            session.batch(torch.ones(2, 16)),
            pytest.raises(RuntimeError, match="nested"),
            session.batch(torch.ones(2, 16)),
        ):
            pass
        with session.batch(torch.ones(3, 16)), pytest.raises(ValueError, match="3 rows"):
            model(ids)
        assert session.rows is None
    assert model.config._attn_implementation == "sdpa"
