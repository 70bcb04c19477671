"""`sparse_eval.apply` on tiny random Llama and Qwen2 models (CPU, fp32): dense equivalence at compression 1
(prefill and 20 greedy steps), dispatch of prefill / decode / chunked calls, restoration, clear errors."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import SimpleNamespace
from typing import ClassVar

import pytest
import torch
from transformers import AttentionInterface, DynamicCache

import sparse_eval
from sparse_eval.base import SparseMethod
from sparse_eval.generation import generate, greedy_decode

SMALL = {
    "dense": {},
    "vertical_slash": {"block_size": 16, "q_block_size": 32, "last_q_size": 48, "n_local": 8},
    "block_sparse": {"block_size": 16, "q_block_size": 32},
    "flexprefill": {"block_size": 16, "min_budget": 32, "last_q_size": 48},
}
PREFILL = ("vertical_slash", "block_sparse", "flexprefill")


def logits_of(model, ids):
    with torch.no_grad():
        return model(ids).logits


def with_cache(model, ids, cache):
    """Forward with a cache under either keyword (`cache` in newer transformers, `past_key_values` before)."""
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return model(ids, **{name: cache}).logits


def registered_sparse_names():
    return [name for name in AttentionInterface._global_mapping if name.startswith("sparse_eval_")]


@pytest.mark.parametrize("name", list(SMALL))
def test_compression_one_reproduces_dense_prefill_logits(tiny_lm, token_ids, name):
    ids = token_ids(300)
    dense = logits_of(tiny_lm, ids)
    with sparse_eval.apply(tiny_lm, name, compression=1, **SMALL[name]) as session:
        sparse = logits_of(tiny_lm, ids)
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-5)
    assert session.report.achieved_compression("prefill") == 1.0
    assert sorted(session.report.per_layer("prefill")) == [0, 1]


@pytest.mark.parametrize("name", PREFILL)
def test_compression_one_reproduces_twenty_dense_greedy_steps(tiny_lm, token_ids, name):
    ids = token_ids(200, seed=1)
    tokens, _, logits, _ = greedy_decode(
        tiny_lm, ids, None, max_new_tokens=20, eos_token_id=[], return_logits=True
    )
    result = generate(
        tiny_lm,
        ids,
        name,
        compression=1,
        max_new_tokens=20,
        eos_token_id=[],
        return_logits=True,
        **SMALL[name],
    )
    assert result.tokens == tokens
    torch.testing.assert_close(torch.stack(result.logits), torch.stack(logits), rtol=1e-5, atol=1e-5)
    assert result.report.achieved_compression("decode") == 1.0


@pytest.mark.parametrize("name", PREFILL)
def test_sparse_prefill_changes_logits_and_reports_each_layer_and_head(build_tiny_lm, token_ids, name):
    model = build_tiny_lm("llama")
    ids = token_ids(400, seed=2)
    dense = logits_of(model, ids)
    with sparse_eval.apply(model, name, compression=4, **SMALL[name]) as session:
        sparse = logits_of(model, ids)
    assert not torch.allclose(sparse, dense, atol=1e-4)
    per_head = session.report.per_head("prefill")
    assert sorted(per_head) == [0, 1] and all(len(h) == 4 for h in per_head.values())
    assert session.report.achieved_compression("prefill") > 2.0
    assert session.method.name == name and session.calls == 2


def test_model_is_restored_after_exit_and_after_an_exception(build_tiny_lm, token_ids):
    model = build_tiny_lm("qwen2")
    ids = token_ids(64)
    before = logits_of(model, ids)
    with sparse_eval.apply(model, "block_sparse", compression=4, **SMALL["block_sparse"]):
        assert model.config._attn_implementation.startswith("sparse_eval_block_sparse")
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError, match="boom"), sparse_eval.apply(model, "vertical_slash", compression=3):
        raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"
    assert registered_sparse_names() == []
    torch.testing.assert_close(logits_of(model, ids), before, rtol=0, atol=0)


def test_decode_and_chunked_calls_keep_positions_and_causality(build_tiny_lm, token_ids):
    model = build_tiny_lm("llama")
    ids = token_ids(40, seed=3)
    full = logits_of(model, ids)
    with sparse_eval.apply(model, "dense") as session, torch.no_grad():
        cache = DynamicCache(config=model.config)
        with_cache(model, ids[:, :30], cache)  # prefill: q_len == k_len
        step = with_cache(model, ids[:, 30:31], cache)  # decode: q_len == 1
        chunk = with_cache(model, ids[:, 31:], cache)  # chunk: 1 < q_len < k_len
    torch.testing.assert_close(step[:, -1], full[:, 30], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunk, full[:, 31:], rtol=1e-5, atol=1e-5)
    assert session.report.achieved_compression("decode") == 1.0
    assert session.report.layer(0, "decode").calls == 1


@dataclass
class _KeepFirstFive(SparseMethod):
    """A KV method for the test: keep the first five positions of every KV head."""

    name: ClassVar[str] = "keep_first_five"
    phase: ClassVar[str] = "kv"

    def select_kv(self, query, key, value, *, layer_idx, scaling, stats):
        kept = torch.arange(5).expand(key.shape[0], key.shape[1], 5)
        stats.add(torch.full((key.shape[1],), float(key.shape[-2])), 5.0)
        return kept


def test_select_kv_results_wait_in_pending_kv(build_tiny_lm, token_ids):
    model = build_tiny_lm("qwen2")
    with (
        pytest.warns(RuntimeWarning, match="no cache was compressed"),
        sparse_eval.apply(model, _KeepFirstFive()) as session,
    ):
        logits_of(model, token_ids(50))
    assert sorted(session.pending_kv) == [0, 1]
    assert session.pending_kv[0].shape == (1, 2, 5)
    assert session.report.achieved_compression("kv") == pytest.approx(10.0)


def test_method_instances_are_copied_not_mutated(build_tiny_lm):
    model = build_tiny_lm("llama")
    method = sparse_eval.get_method("block_sparse", compression=4, block_size=16, q_block_size=32)
    with sparse_eval.apply(model, method, compression=2, backend="reference") as session:
        assert session.method is not method
        assert (session.method.compression, session.method.backend) == (2.0, "reference")
    assert (method.compression, method.backend) == (4.0, "auto")
    with pytest.raises(TypeError, match="no argument"), sparse_eval.apply(model, method, window=3):
        pass


def test_auto_backend_is_the_reference_on_cpu(build_tiny_lm):
    with sparse_eval.apply(build_tiny_lm("llama"), "vertical_slash", compression=2) as session:
        assert session.method.resolve_backend(torch.zeros(1)) == "reference"


def test_clear_errors(build_tiny_lm, token_ids):
    model = build_tiny_lm("llama")
    with (
        pytest.raises(ValueError, match="batch of 2 sequences without a padding layout"),
        sparse_eval.apply(model, "dense"),
    ):
        logits_of(model, torch.cat([token_ids(16), token_ids(16, seed=1)]))
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(KeyError, match="available"), sparse_eval.apply(model, "minference"):
        pass
    with pytest.raises(ValueError, match="backend"), sparse_eval.apply(model, "dense", backend="triton"):
        pass
    with pytest.raises(TypeError, match="method name or a SparseMethod"), sparse_eval.apply(model, 3):
        pass
    with (
        pytest.raises(TypeError, match=r"Linear .*Llama, Qwen2"),
        sparse_eval.apply(torch.nn.Linear(2, 2), "dense"),
    ):
        pass
    assert registered_sparse_names() == []


class _StubbornModel:
    """Looks patchable but ignores the switch, like a model whose attention bypasses the interface."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(_attn_implementation="eager")
        self.layer = SimpleNamespace(layer_idx=0)

    def set_attn_implementation(self, name: str) -> None:
        pass

    def modules(self):
        return iter([self.layer])


def test_models_that_refuse_the_switch_get_a_clear_error():
    model = _StubbornModel()
    with pytest.raises(TypeError, match=r"_StubbornModel refused .*Llama"), sparse_eval.apply(model, "dense"):
        pass
    assert registered_sparse_names() == []


def test_every_attention_call_runs_under_its_layers_device(build_tiny_lm, token_ids, monkeypatch):
    """Triton and FA4 launch on the current CUDA device, so a model spread over GPUs needs the layer's device
    made current around its attention: every call enters `layer_device` with the query's device."""
    from contextlib import nullcontext

    from sparse_eval import patch

    seen: list[torch.device] = []

    def spy(device: torch.device):
        seen.append(device)
        return nullcontext()

    monkeypatch.setattr(patch, "layer_device", spy)
    model = build_tiny_lm("qwen2")
    with sparse_eval.apply(model, "vertical_slash", compression=2.0, **SMALL["vertical_slash"]) as session:
        model(token_ids(200))
    assert len(seen) == session.calls > 0
    assert all(d == torch.device("cpu") for d in seen)


def test_layer_device_makes_a_cuda_layers_device_current_and_leaves_the_cpu_alone():
    from sparse_eval.patch import layer_device

    guard = layer_device(torch.device("cuda", 1))
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1  # entered only where that GPU exists
    with layer_device(torch.device("cpu")):
        pass
