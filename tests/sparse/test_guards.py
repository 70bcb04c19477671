"""Loud failures instead of silently wrong numbers: sliding windows, unsupported generation settings,
truncated loglikelihood contexts, and method instances keeping their backend."""

from __future__ import annotations

import pytest
import torch

import sparse_eval
from sparse_eval.lm_eval_model import SparseHFLM


def test_generation_past_a_sliding_window_is_refused(build_tiny_lm):
    """A sliding cache keeps at most `window` keys, so the guard must look at positions, not at k_len."""
    model = build_tiny_lm("mistral", sliding_window=64)
    prompt = torch.randint(0, 101, (1, 60), generator=torch.Generator().manual_seed(0))
    with pytest.raises(NotImplementedError, match="sliding-window attention"):
        sparse_eval.generate(model, prompt, "quest", compression=2, max_new_tokens=30)
    # inside the window everything works
    out = sparse_eval.generate(model, prompt[:, :40], "quest", compression=2, max_new_tokens=10)
    assert len(out.tokens) == 10


def test_method_instance_keeps_its_backend(build_tiny_lm):
    model = build_tiny_lm("llama")
    method = sparse_eval.get_method("block_sparse", compression=2, backend="reference")
    with sparse_eval.apply(model, method) as session:
        assert session.method.backend == "reference"
    with sparse_eval.apply(model, "block_sparse") as session:
        assert session.method.backend == "auto"


def _lm(model_dir, **args) -> SparseHFLM:
    text = ",".join(
        f"{k}={v}" for k, v in {"pretrained": model_dir, "device": "cpu", "dtype": "float32", **args}.items()
    )
    return SparseHFLM.create_from_arg_string(text)


def test_generation_settings_greedy_decoding_cannot_honour_are_refused(saved_tiny_qwen2):
    lm = _lm(saved_tiny_qwen2, method="quest", compression=2)
    context = torch.tensor([[1, 2, 3, 4]])
    with pytest.raises(ValueError, match="repetition_penalty"):
        lm._model_generate(context, max_length=8, stop=[], do_sample=False, repetition_penalty=1.3)
    with pytest.raises(ValueError, match="num_beams"):
        lm._model_generate(context, max_length=8, stop=[], do_sample=False, num_beams=4)
    # sampling-only settings and neutral values change nothing in greedy decoding
    out = lm._model_generate(
        context, max_length=8, stop=[], do_sample=False, top_k=50, top_p=0.9, num_beams=1
    )
    assert out.shape == (1, 8)


def test_loglikelihood_context_that_does_not_fit_is_an_error(saved_tiny_qwen2):
    lm = _lm(saved_tiny_qwen2, method="block_sparse", compression=2, max_length=64)
    too_long = [(("ctx", "cont"), list(range(1, 61)), list(range(1, 11)))]
    with pytest.raises(ValueError, match="does not fit max_length 64"):
        lm._loglikelihood_tokens(too_long)
    fits = [(("ctx", "cont"), list(range(1, 41)), list(range(1, 11)))]
    ((logprob, _),) = lm._loglikelihood_tokens(fits)
    assert logprob < 0
