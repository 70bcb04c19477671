"""Exact length in other tokenizer families (SentencePiece-style unigram, WordPiece, byte-level BPE, a
BOS-adding tokenizer), with and without a chat template; tokenizers trained here on the fixtures."""

from __future__ import annotations

import pytest
from qa_helpers import QUALITY_FILE, SQUAD_FILE, TOEFL_FILE, read_jsonl
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from longtasks.generate import generate_samples
from longtasks.registry import list_tasks
from longtasks.tokenizer import LengthTokenizer

CHAT_TEMPLATE = "{% for m in messages %}<s>[{{ m['role'] }}] {{ m['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}<s>[assistant] {% endif %}"


def corpus() -> list[str]:
    texts = [r["context"] for r in read_jsonl(SQUAD_FILE)] + [r["article"] for r in read_jsonl(QUALITY_FILE)]
    return texts + [r["context"] + " ".join(r["questions"]) for r in read_jsonl(TOEFL_FILE)]


def train(kind: str, add_bos: bool = False) -> LengthTokenizer:
    if kind == "unigram":
        backend = Tokenizer(models.Unigram())
        backend.normalizer = normalizers.NFKC()
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=500, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>"
        )
    elif kind == "wordpiece":
        backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordPieceTrainer(vocab_size=500, special_tokens=["[UNK]", "<s>", "</s>"])
    else:
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=500,
            special_tokens=["<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    texts = corpus()
    backend.train_from_iterator(texts, trainer, length=len(texts))
    if add_bos:
        bos = backend.token_to_id("<s>")
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    hf = PreTrainedTokenizerFast(tokenizer_object=backend, chat_template=CHAT_TEMPLATE, bos_token="<s>")
    return LengthTokenizer.from_hf(f"tiny-{kind}", hf, "trained-in-test")


@pytest.mark.parametrize("kind", ["unigram", "wordpiece", "bytelevel_bpe", "bos_bpe"])
@pytest.mark.parametrize("chat", [False, True])
def test_exact_length_with_other_tokenizer_families(kind, chat):
    tok = train(kind.replace("bos_bpe", "bytelevel_bpe"), add_bos=kind == "bos_bpe")
    for task in list_tasks("qa"):
        for length in (2500, 9000):
            for sample in generate_samples(task, length, 2, tokenizer=tok, chat=chat, seed=3):
                text = tok.chat_wrap(sample.prompt) if chat else sample.prompt
                ids = tok.hf(text, add_special_tokens=not text.startswith("<s>"))["input_ids"]
                assert sample.input_tokens == length == len(ids), (task, length)
