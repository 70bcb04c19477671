"""Tiny random decoder models (Llama, Qwen2) built from configs, for the sparse attention tests (CPU, fp32)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from longtasks.tokenizer import load_tokenizer


def _build(kind: str, sliding_window: int | None = None, attn: str = "sdpa") -> torch.nn.Module:
    common = dict(
        vocab_size=101,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        attn_implementation=attn,
    )
    torch.manual_seed(0)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common, use_sliding_window=False))
    elif kind == "mistral":
        model = MistralForCausalLM(MistralConfig(**common, sliding_window=sliding_window))
    else:
        raise ValueError(kind)
    return model.float().eval()


@pytest.fixture(scope="module")
def build_tiny_lm() -> Callable[[str], torch.nn.Module]:
    """Factory: build_tiny_lm("llama" | "qwen2" | "mistral", sliding_window=None, attn="sdpa") -> a 2-layer model with 4 query / 2 KV heads, head_dim 16."""
    return _build


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def tiny_lm(request: pytest.FixtureRequest) -> torch.nn.Module:
    return _build(request.param)


@pytest.fixture
def token_ids() -> Callable[[int, int], torch.Tensor]:
    """Factory: token_ids(length, seed) -> (1, length) random ids."""

    def make(length: int, seed: int = 0) -> torch.Tensor:
        return torch.randint(0, 101, (1, length), generator=torch.Generator().manual_seed(seed))

    return make


@pytest.fixture(scope="session")
def saved_tiny_qwen2(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random Qwen2 whose vocabulary is the offline Qwen2.5 tokenizer's, saved with that tokenizer
    to a folder: what `pretrained=` points at in lm-eval runs."""
    root = tmp_path_factory.mktemp("tiny_qwen2")
    tokenizer = load_tokenizer().hf
    tokenizer.save_pretrained(root)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        use_sliding_window=False,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(root)
    return root
