"""Counting by pieces (`longtasks.tokenizer._Known`) gives the very counts of encoding whole texts.

The default tokenizer counts a long prompt from remembered counts of its sentences (cut at ". ") and a
batch of sentences from remembered counts of their words (cut at single spaces). Both rest on Qwen2.5's
pre-tokenisation pattern never merging across such a space; these tests compare the sums with encoding
every text whole, on story and RULER prompts and on random texts built to stress the cuts.
"""

from __future__ import annotations

import random

import pytest

from longtasks.generation import generate_samples
from longtasks.tokenizer import _LONG_TEXT, _build_default

# Unicode's White_Space property (PropList.txt), which the regex engine behind tiktoken calls \s.
WHITE_SPACE = [chr(c) for c in [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B)]] + [
    "\u2028",
    "\u2029",
    "\u202f",
    "\u205f",
    "\u3000",
]

PIECES = [
    "a", "b", "Z", "é", "ß", "the", "Mill", " ", " ", " ", ".", ". ", "..", ". .", " .", "  ", ",", "'", "'s",
    "'ll", "\n", "\n\n", ".\n", "\r\n", "\t", "\xa0", "\u3000", "\u2028", "\x85", "\x1c", "\u200b", "5", "12",
    "!", "?", '"', '."', "(", ")", "-", "e\u0301", "日本", "😀", "<|im", "_end|>",
]  # fmt: skip


@pytest.fixture(scope="module")
def fresh():
    """A default tokenizer of its own: no counts remembered from other tests."""
    return _build_default()


def _encoded(tokenizer, text: str) -> int:
    return len(tokenizer.fast_encoding.encode(text, allowed_special="all"))


def test_whitespace_guards_are_conservative():
    """The word cut needs: a printable text holds no whitespace but the plain space; the sentence cut
    needs nothing of the kind ("." is not whitespace)."""
    assert all(c.isspace() for c in WHITE_SPACE)
    assert [c for c in WHITE_SPACE if c.isprintable()] == [" "]


def _random_text(rng: random.Random, size: int, pieces=PIECES) -> str:
    return "".join(rng.choice(pieces) for _ in range(size))


def test_batches_count_as_whole_texts(fresh):
    rng = random.Random(0)
    plain = [p for p in PIECES if p.isprintable() and p.strip() and " " not in p]
    for _ in range(1500):
        if rng.random() < 0.5:  # single-spaced words: the word cut applies
            texts = [
                " " + " ".join(_random_text(rng, 2, plain) for _ in range(rng.randint(1, 8)))
                for _ in range(5)
            ]
        else:
            texts = [" " * (rng.random() < 0.7) + _random_text(rng, rng.randint(0, 12)) for _ in range(5)]
        assert fresh.count_many(texts, keep=rng.random() < 0.3) == [_encoded(fresh, t) for t in texts]
    assert fresh.memo["known_counts"].words, "the word cut was never taken"


def test_long_texts_count_as_whole_texts(fresh):
    rng = random.Random(1)
    pieces = [p for p in PIECES if p not in ("<|im", "_end|>")]
    cut = 0
    for _ in range(150):
        sentences = [" " + _random_text(rng, rng.randint(1, 8), pieces) + "." for _ in range(40)]
        fresh.count_many(sentences[:20], keep=True)
        fresh.count_many(sentences[20:30])
        parts = [
            rng.choice(sentences) + (_random_text(rng, 1, pieces) if rng.random() < 0.2 else "")
            for _ in range(900)
        ]
        text = _random_text(rng, 3, pieces) + "".join(parts)
        assert len(text) >= _LONG_TEXT
        cut += fresh.memo["known_counts"]._worth_cutting(text)
        assert fresh.count(text) == _encoded(fresh, text)
    assert cut > 100, "long texts were encoded whole instead of cut at their sentences"


@pytest.mark.parametrize(
    "task",
    [
        "story_retrieval",
        "story_multihop",
        "story_filtering",
        "story_inventory",
        "ruler_niah",
        "ruler_vt",
        "ruler_cwe",
    ],
)
@pytest.mark.parametrize("chat", [False, True])
def test_prompts_count_as_whole_texts(fresh, task, chat):
    for sample in generate_samples(task, 20000, 2, seed=3, tokenizer=fresh, chat=chat):
        text = fresh.chat_wrap(sample.prompt) if chat else sample.prompt
        assert fresh.count(text) == _encoded(fresh, text) == 20000
        assert fresh.count(sample.prompt) == _encoded(fresh, sample.prompt)
