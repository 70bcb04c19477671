"""Tiny tokenizers of other families (SentencePiece-style unigram, WordPiece, byte-level BPE, optionally
BOS-adding), trained offline on a test's own text, for the exact-length tests of every task family."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from longtasks.tokenizer import LengthTokenizer

CHAT_TEMPLATE = "{% for m in messages %}<s>[{{ m['role'] }}] {{ m['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}<s>[assistant] {% endif %}"
KINDS = ("unigram", "wordpiece", "bytelevel_bpe")


def train_tokenizer(
    kind: str, corpus: list[str], *, vocab_size: int, add_bos: bool = False
) -> LengthTokenizer:
    """A `kind` tokenizer (one of KINDS) with a chat template; `add_bos` makes `tokenizer(text)` prepend <s>,
    as Llama's does."""
    if kind == "unigram":
        backend = Tokenizer(models.Unigram())
        backend.normalizer = normalizers.NFKC()
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>"
        )
    elif kind == "wordpiece":
        backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[UNK]", "<s>", "</s>"])
    elif kind == "bytelevel_bpe":
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=["<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}; use one of {KINDS}")
    backend.train_from_iterator(corpus, trainer, length=len(corpus))
    if add_bos:
        bos = backend.token_to_id("<s>")
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    hf = PreTrainedTokenizerFast(tokenizer_object=backend, chat_template=CHAT_TEMPLATE, bos_token="<s>")
    return LengthTokenizer.from_hf(f"tiny-{kind}", hf, "trained-in-test")
