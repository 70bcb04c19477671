"""A static dataset read for a model with another tokenizer: prompts that would be longer than their
length (and so cut by lm-eval) are refused; the dataset's own tokenizer passes."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from longtasks.dataset_dir import generate_to_dir
from longtasks.lm_eval_tasks.options import StaticOptions
from longtasks.lm_eval_tasks.static import load_static_rows


def _options(source, tokenizer):
    return StaticOptions(
        source=str(source), lengths=(2048,), num_samples=None, chat=None, tokenizer=tokenizer, gen_budget=None
    )


def test_other_tokenizer_that_would_truncate_is_refused(tmp_path):
    data = tmp_path / "data"
    generate_to_dir(data, ["story_multihop"], [2048], num_samples=2, progress=False)
    assert len(load_static_rows("story_multihop", _options(data, "qwen2.5"))) == 2

    # a tiny-vocabulary WordPiece tokenizer needs far more tokens for the same text
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(
        ["a few words of text"], trainers.WordPieceTrainer(vocab_size=60, special_tokens=["[UNK]"])
    )
    folder = tmp_path / "tiny-tokenizer"
    PreTrainedTokenizerFast(tokenizer_object=backend).save_pretrained(folder)
    with pytest.raises(ValueError, match=r"would be truncated; regenerate the data"):
        load_static_rows("story_multihop", _options(data, str(folder)))
