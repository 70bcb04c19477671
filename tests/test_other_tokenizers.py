"""Exact length holds for other tokenizer families too (SentencePiece-style unigram, WordPiece,
byte-level BPE), including a chat template; trained here on generated text, offline."""

from __future__ import annotations

import pytest
from _trained_tokenizers import train_tokenizer

from longtasks.generation import generate_samples


def _train(kind: str, corpus: list[str], add_bos: bool = False):
    return train_tokenizer(kind, corpus, vocab_size=600, add_bos=add_bos)


@pytest.fixture(scope="module")
def corpus(tokenizer) -> list[str]:
    return [s.prompt for s in generate_samples("story_retrieval", 6000, 2, tokenizer=tokenizer)]


@pytest.mark.parametrize("kind", ["unigram", "wordpiece", "bytelevel_bpe"])
@pytest.mark.parametrize("chat", [False, True])
def test_exact_length_with_other_tokenizer_families(corpus, kind, chat):
    tok = _train(kind, corpus)
    for task, length in [("story_retrieval", 5000), ("story_inventory", 9000), ("ruler_niah", 4500),
                         ("ruler_vt", 4096), ("ruler_cwe", 6000)]:  # fmt: skip
        samples = generate_samples(task, length, 2, tokenizer=tok, chat=chat, seed=11)
        for sample in samples:
            text = tok.chat_wrap(sample.prompt) if chat else sample.prompt
            assert sample.input_tokens == length == len(tok.hf(text)["input_ids"])


@pytest.mark.parametrize("chat", [False, True])
def test_bos_adding_tokenizer_counts_what_the_model_is_fed(corpus, chat):
    """Raw prompts get BOS from `tokenizer(text)` (as in lm-eval's HF model); chat text that already
    starts with the BOS string does not get a second one. Either way the model reads `length` tokens."""
    tok = _train("bytelevel_bpe", corpus, add_bos=True)
    for task in ("story_filtering", "ruler_niah", "ruler_vt", "ruler_cwe"):
        (sample,) = generate_samples(task, 6000, 1, tokenizer=tok, chat=chat)
        text = tok.chat_wrap(sample.prompt) if chat else sample.prompt
        ids = tok.hf(text, add_special_tokens=not text.startswith("<s>"))["input_ids"]
        assert len(ids) == 6000, task
        assert (ids[0] == tok.hf.bos_token_id) and (ids[1] != tok.hf.bos_token_id)


def test_workers_use_the_callers_tokenizer_object(corpus):
    """A tokenizer that exists only in memory (no name to load it by) still works with several workers."""
    tok = _train("wordpiece", corpus)
    serial = generate_samples("story_multihop", 3000, 3, tokenizer=tok, seed=2)
    parallel = generate_samples("story_multihop", 3000, 3, tokenizer=tok, seed=2, workers=2)
    assert [s.to_row() for s in serial] == [s.to_row() for s in parallel]


def test_byte_level_bpe_counts_through_a_verified_tiktoken_bridge(corpus):
    """A user's byte-level BPE tokenizer gets the fast tiktoken path, with ids equal to its own."""
    tok = _train("bytelevel_bpe", corpus)
    assert tok.fast_encoding is not None
    for text in [*corpus, "VAR ABCDE = 12345.\n1. apple\n2. pear", "Ünïcødé 🙂 don't"]:
        assert tok.encode(text) == tok.hf.backend_tokenizer.encode(text, add_special_tokens=False).ids
    assert _train("unigram", corpus).fast_encoding is None  # SentencePiece-style: the HF path


def test_word_list_that_a_tokenizer_merges_oddly_is_drawn_again(corpus):
    """With this unigram tokenizer, sample 2 of ruler_cwe at 8192 tokens (seed 0) cannot be sized to the exact
    length with its first shuffle of words; another draw can. It used to fail the whole run."""
    tok = _train("unigram", corpus)
    samples = generate_samples("ruler_cwe", 8192, 3, tokenizer=tok, seed=0)
    assert [len(tok.hf(s.prompt)["input_ids"]) for s in samples] == [8192] * 3


def test_llama3_style_sequence_post_processor_keeps_the_tiktoken_bridge(corpus):
    """Llama 3's tokenizer.json post-processes with Sequence[ByteLevel, TemplateProcessing(BOS)]; it only
    adds the BOS, so the fast path applies (it used to fall back to the ~14x slower HF path)."""
    from tokenizers import processors

    from longtasks.tokenizer import LengthTokenizer

    hf = _train("bytelevel_bpe", corpus, add_bos=True).hf
    bos = hf.bos_token_id
    hf.backend_tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)]),
        ]
    )
    tok = LengthTokenizer.from_hf("tiny-llama3-style", hf, "trained-in-test")
    assert tok.fast_encoding is not None
    (sample,) = generate_samples("ruler_niah", 3000, 1, tokenizer=tok)
    ids = hf(sample.prompt)["input_ids"]
    assert len(ids) == 3000 and ids[0] == bos and ids[1] != bos
