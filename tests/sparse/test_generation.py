"""The greedy loop under Quest / SnapKV / Ada-SnapKV on tiny random Llama and Qwen2 models (CPU, fp32):
dense-equivalence at compression 1, exact agreement with a masked full-sequence reference after KV pruning
(which needs the original positions), Quest's achieved compression, stopping, and model restoration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AttentionInterface

import sparse_eval.generation as generation
from sparse_eval.generation import generate, greedy_decode
from tests.sparse.conftest import _build as build_model

STEPS = 20
KV_METHODS = ("snapkv", "ada_snapkv")


def tiny_model(kind: str, attn: str = "sdpa") -> torch.nn.Module:
    return build_model(kind, attn=attn)


def prompt(length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 97, (1, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def model(request):
    return tiny_model(request.param)


def dense_run(model, ids, steps=STEPS):
    tokens, _, logits, _ = greedy_decode(
        model, ids, None, max_new_tokens=steps, eos_token_id=[], return_logits=True
    )
    return tokens, torch.stack(logits)


def test_loop_matches_transformers_generate(model):
    ids = prompt(40)
    tokens, _ = dense_run(model, ids)
    reference = model.generate(ids, max_new_tokens=STEPS, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert tokens == reference[0, ids.shape[1] :].tolist()


@pytest.mark.parametrize("method", ["dense", "quest", *KV_METHODS])
def test_compression_one_reproduces_dense(model, method):
    ids = prompt(300)  # longer than the SnapKV window and many Quest pages
    tokens, logits = dense_run(model, ids)
    result = generate(
        model, ids, method, compression=1, max_new_tokens=STEPS, eos_token_id=[], return_logits=True
    )
    assert result.tokens == tokens
    torch.testing.assert_close(torch.stack(result.logits), logits, rtol=1e-4, atol=1e-4)
    assert result.stop_reason == "max_new_tokens"


# ---------------------------------------------------------------- KV pruning vs a masked reference


def _reference_logits(model, sequence: torch.Tensor, prompt_len: int, kept: dict[int, torch.Tensor]):
    """Full-sequence forward (positions 0..T-1, no cache) in which rows after the prompt see, among prompt
    positions, only those each layer and KV head kept. This is what KV pruning must compute."""
    group = model.config.num_attention_heads // model.config.num_key_value_heads

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        length = query.shape[-2]
        mask = torch.ones(length, length, dtype=torch.bool).tril()[None, None].repeat(1, query.shape[1], 1, 1)
        for h, row in enumerate(kept[module.layer_idx][0]):
            allowed = torch.zeros(length, dtype=torch.bool)
            allowed[row[row >= 0]] = True
            allowed[prompt_len:] = True
            for g in range(group):
                mask[0, h * group + g, prompt_len:] &= allowed
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, scale=scaling, enable_gqa=True
        )
        return out.transpose(1, 2), None

    AttentionInterface.register("test_kept_reference", attention)
    previous = model.config._attn_implementation
    model.set_attn_implementation("test_kept_reference")
    try:
        with torch.inference_mode():
            logits = model(sequence, position_ids=torch.arange(sequence.shape[1])[None]).logits[0].float()
    finally:
        model.set_attn_implementation(previous)
    return logits[prompt_len - 1 :]


def _run_recording_selection(model, ids, method, monkeypatch, **kw):
    recorded: dict[int, torch.Tensor] = {}
    original = generation.compress_cache

    def spy(cache, pending, method_obj=None):
        recorded.update({k: v.clone() for k, v in pending.items()})
        return original(cache, pending, method_obj)

    monkeypatch.setattr(generation, "compress_cache", spy)
    result = generate(model, ids, method, max_new_tokens=STEPS, eos_token_id=[], return_logits=True, **kw)
    return result, recorded


@pytest.mark.parametrize("method", KV_METHODS)
def test_kv_pruned_decoding_equals_masked_reference(model, method, monkeypatch):
    ids = prompt(320, seed=1)
    kw = dict(compression=4, window=64, local=16)
    result, kept = _run_recording_selection(model, ids, method, monkeypatch, **kw)
    assert sorted(kept) == [0, 1]
    sequence = torch.cat([ids, torch.tensor([result.tokens[:-1]])], dim=1)
    reference = _reference_logits(model, sequence, ids.shape[1], kept)
    torch.testing.assert_close(torch.stack(result.logits), reference, rtol=1e-4, atol=1e-4)
    # the pruning is real: dense decoding differs
    _, dense_logits = dense_run(model, ids)
    assert not torch.allclose(torch.stack(result.logits)[1:], dense_logits[1:], atol=1e-3)
    # the report: 4x per layer for both methods (exact per layer), per-head for Ada-SnapKV varies around it
    per_layer = result.report.per_layer("kv")
    assert per_layer == pytest.approx({0: 4.0, 1: 4.0}, rel=0.01)
    heads = result.report.per_head("kv")
    assert all(len(h) == 2 for h in heads.values())
    if method == "ada_snapkv":  # uneven heads: the padded-slot masking is exercised
        assert any(abs(h[0] - h[1]) > 0.1 for h in heads.values())
    decode = result.report.achieved_compression("decode")
    assert 3.0 < decode < 4.0  # (320 + t) / (80 + t) over the 19 decode steps


def test_pruned_cache_needs_original_positions(model, monkeypatch):
    """Decoding at positions inferred from the (pruned) cache length gives different logits: the loop must
    pass the original ones, and does."""
    ids = prompt(320, seed=1)
    kw = dict(compression=4, window=64, local=16)
    right, _ = _run_recording_selection(model, ids, "snapkv", monkeypatch, **kw)
    assert right.positions == list(range(320, 320 + STEPS - 1))

    seen: list[torch.Tensor] = []
    base = model.model if hasattr(model, "model") else model
    handle = base.register_forward_pre_hook(
        lambda m, a, k: seen.append(k["position_ids"].clone()), with_kwargs=True
    )
    try:
        generate(model, ids, "snapkv", max_new_tokens=3, eos_token_id=[], **kw)
    finally:
        handle.remove()
    assert [p.flatten().tolist() for p in seen[1:]] == [[320], [321]]
    assert seen[0].flatten().tolist() == list(range(320))

    original_forward = generation._forward

    def wrong_positions(model_, ids_, cache, positions):
        return original_forward(model_, ids_, cache, positions if ids_.shape[1] > 1 else None)

    monkeypatch.setattr(generation, "_forward", wrong_positions)
    wrong = generate(model, ids, "snapkv", max_new_tokens=STEPS, eos_token_id=[], return_logits=True, **kw)
    assert not torch.allclose(torch.stack(wrong.logits)[1:], torch.stack(right.logits)[1:], atol=1e-3)


def test_quest_compresses_decoding_at_target(model):
    ids = prompt(480, seed=2)
    result = generate(
        model, ids, "quest", compression=5, max_new_tokens=STEPS, eos_token_id=[], return_logits=True
    )
    decode = result.report.per_layer("decode")
    assert sorted(decode) == [0, 1]
    for ratio in decode.values():
        assert abs(ratio / 5 - 1) <= 0.10
    assert all(len(h) == 4 for h in result.report.per_head("decode").values())
    _, dense_logits = dense_run(model, ids)
    assert not torch.allclose(torch.stack(result.logits)[1:], dense_logits[1:], atol=1e-3)
    torch.testing.assert_close(result.logits[0], dense_logits[0], rtol=1e-4, atol=1e-4)  # prefill is dense


def test_model_unchanged_after_generation(model):
    ids = prompt(200, seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    impl = model.config._attn_implementation
    with torch.inference_mode():
        logits_before = model(ids).logits
    generate(model, ids, "quest", compression=3, max_new_tokens=5, eos_token_id=[])
    for method in KV_METHODS:
        generate(model, ids, method, compression=3, max_new_tokens=5, eos_token_id=[], window=32, local=8)
    assert model.config._attn_implementation == impl
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.inference_mode():
        torch.testing.assert_close(model(ids).logits, logits_before)


class _CharTokenizer:
    def decode(self, ids):
        return "".join(chr(97 + i % 26) for i in ids)


def test_stops_on_eos_and_stop_strings():
    model = tiny_model("llama")
    ids = prompt(50, seed=4)
    free = generate(
        model, ids, "snapkv", compression=2, max_new_tokens=12, eos_token_id=[], window=16, local=4
    )
    assert free.stop_reason == "max_new_tokens" and len(free.tokens) == 12
    eos = free.tokens[4]
    first = free.tokens.index(eos)
    by_eos = generate(
        model, ids, "snapkv", compression=2, max_new_tokens=12, eos_token_id=eos, window=16, local=4
    )
    assert by_eos.stop_reason == "eos" and by_eos.tokens == free.tokens[: first + 1]
    text = _CharTokenizer().decode(free.tokens)
    stop = text[5:7]
    by_stop = generate(
        model,
        ids,
        "snapkv",
        compression=2,
        max_new_tokens=12,
        eos_token_id=[],
        stop=[stop],
        tokenizer=_CharTokenizer(),
        window=16,
        local=4,
    )
    assert by_stop.stop_reason == "stop_string"
    assert stop in _CharTokenizer().decode(by_stop.tokens)
    assert stop not in _CharTokenizer().decode(by_stop.tokens[:-1])
    knobs = {"compression": 2, "max_new_tokens": 12, "window": 16, "local": 4, "tokenizer": _CharTokenizer()}
    one_string = generate(model, ids, "snapkv", eos_token_id=[], stop=stop, **knobs)
    assert one_string.tokens == by_stop.tokens  # one string is one stop string, not its characters
    for same_eos in (torch.tensor(eos), torch.tensor([eos]), np.int64(eos)):
        assert generate(model, ids, "snapkv", eos_token_id=same_eos, **knobs).tokens == by_eos.tokens


def test_bad_generation_input_is_explained():
    model = tiny_model("llama")
    with pytest.raises(ValueError, match=r"shape \(L,\) or \(1, L\)"):
        generate(model, torch.zeros(2, 2, 5, dtype=torch.long), "dense")
    with pytest.raises(
        ValueError, match=r"attention_mask \(2, 4\) must have the shape of input_ids \(2, 5\)"
    ):
        generate(model, torch.zeros(2, 5, dtype=torch.long), "dense", attention_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        generate(model, [prompt(5), prompt(3)], "dense", batch_size=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, prompt(5), "dense", max_new_tokens=0)
    with pytest.raises(ValueError, match="need a tokenizer"):
        generate(model, prompt(5), "dense", stop=["x"])
    with pytest.raises(ValueError, match=r"stop must be a string or a list of strings, got \[7\]"):
        generate(model, prompt(5), "dense", stop=[7])
    with pytest.raises(ValueError, match=r"eos_token_id must be a token id or a list of token ids, got 2\.5"):
        generate(model, prompt(5), "dense", eos_token_id=2.5)
