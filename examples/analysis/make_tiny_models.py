"""Save two tiny random Qwen2 models (hidden 32 and 64) with the offline Qwen2.5 tokenizer, for the example sweep.

python examples/analysis/make_tiny_models.py /tmp/longtasks-example
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from longtasks.tokenizer import load_tokenizer


def save(folder: Path, hidden: int, layers: int) -> None:
    tokenizer = load_tokenizer().hf
    tokenizer.save_pretrained(folder)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        use_sliding_window=False, eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/longtasks-example")
    save(root / "tiny-qwen2-h32", hidden=32, layers=2)
    save(root / "tiny-qwen2-h64", hidden=64, layers=4)
    print(root)
