"""Exact length in other tokenizer families (SentencePiece-style unigram, WordPiece, byte-level BPE, a
BOS-adding tokenizer), with and without a chat template; tokenizers trained here on the fixtures."""

from __future__ import annotations

import pytest
from _trained_tokenizers import train_tokenizer
from qa_helpers import QUALITY_FILE, SQUAD_FILE, TOEFL_FILE, read_jsonl

from longtasks.generation import generate_samples
from longtasks.registry import list_tasks


def corpus() -> list[str]:
    texts = [r["context"] for r in read_jsonl(SQUAD_FILE)] + [r["article"] for r in read_jsonl(QUALITY_FILE)]
    return texts + [r["context"] + " ".join(r["questions"]) for r in read_jsonl(TOEFL_FILE)]


@pytest.mark.parametrize("kind", ["unigram", "wordpiece", "bytelevel_bpe", "bos_bpe"])
@pytest.mark.parametrize("chat", [False, True])
def test_exact_length_with_other_tokenizer_families(kind, chat):
    tok = train_tokenizer(
        kind.replace("bos_bpe", "bytelevel_bpe"), corpus(), vocab_size=500, add_bos=kind == "bos_bpe"
    )
    for task in list_tasks("qa"):
        for length in (2500, 9000):
            for sample in generate_samples(task, length, 2, tokenizer=tok, chat=chat, seed=3):
                text = tok.chat_wrap(sample.prompt) if chat else sample.prompt
                ids = tok.hf(text, add_special_tokens=not text.startswith("<s>"))["input_ids"]
                assert sample.input_tokens == length == len(ids), (task, length)
