"""The default tokenizer is Qwen2.5's, offline, and its fast counting path equals the HF tokenizer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longtasks.generation import generate_samples
from longtasks.tokenizer import DEFAULT_TOKENIZER, load_tokenizer


def test_default_is_qwen25_and_offline(tokenizer):
    assert tokenizer.name == DEFAULT_TOKENIZER
    assert tokenizer.encode("Hello world") == [9707, 1879]
    assert tokenizer.hf("Hello world", add_special_tokens=False)["input_ids"] == [9707, 1879]
    assert tokenizer.hf.convert_tokens_to_ids("<|im_end|>") == 151645


def test_chat_template_matches_qwen_format(tokenizer):
    text = tokenizer.chat_wrap("hi")
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    ids = tokenizer.encode(text)
    assert ids[0] == 151644 and ids.count(151644) == 3  # system, user, assistant turns


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=400))
def test_fast_counting_equals_hf_tokenizer(tokenizer, text):
    hf_ids = tokenizer.hf.backend_tokenizer.encode(text, add_special_tokens=False).ids
    assert tokenizer.encode(text) == hf_ids


@pytest.mark.parametrize("chat", [False, True])
def test_fast_counting_equals_hf_on_generated_prompts(tokenizer, chat):
    (sample,) = generate_samples("story_filtering", 6000, 1, tokenizer=tokenizer, chat=chat)
    text = tokenizer.chat_wrap(sample.prompt) if chat else sample.prompt
    assert len(tokenizer.hf.backend_tokenizer.encode(text, add_special_tokens=False).ids) == 6000


def test_a_folder_without_tokenizer_files_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match=r"(?s)cannot load a tokenizer from the folder .*qwen2\.5"):
        load_tokenizer(str(tmp_path))


def test_saved_default_tokenizer_loads_as_hf_folder(tokenizer, tmp_path):
    tokenizer.hf.save_pretrained(tmp_path)
    other = load_tokenizer(str(tmp_path))
    assert other.encode("Hello world") == [9707, 1879]
    assert other.chat_wrap("hi") == tokenizer.chat_wrap("hi")


@settings(max_examples=60, deadline=None)
@given(message=st.text(max_size=200))
def test_default_chat_wrap_equals_transformers_apply_chat_template(tokenizer, message):
    """The default renders its chat template without transformers; it must be what transformers renders."""
    expected = tokenizer.hf.apply_chat_template(
        [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
    )
    assert tokenizer.chat_wrap(message) == expected


@pytest.mark.parametrize("name", ["./tok-bpe", "/no/such/tokenizer", "~/no-such-tokenizer/"])
def test_a_missing_local_tokenizer_folder_says_so(name):
    with pytest.raises(ValueError, match=r"tokenizer folder .* does not exist"):
        load_tokenizer(name)


def test_a_local_tokenizer_is_recorded_with_a_content_hash(tokenizer, tmp_path):
    from longtasks.tokenizer import local_revision

    tokenizer.hf.save_pretrained(tmp_path)
    first = local_revision(tmp_path)
    assert first.startswith("local-sha256:") and load_tokenizer(str(tmp_path)).revision == first
    config = tmp_path / "tokenizer_config.json"
    config.write_text(config.read_text().replace("}", ', "note": "changed"}', 1))
    assert local_revision(tmp_path) != first


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(
        st.one_of(st.text(max_size=40), st.sampled_from(["<|im_start|>", "<|im_end|>", "<|endoftext|>"]))
    )
)
def test_counts_equal_the_hf_tokenizer_with_and_without_special_tokens(tokenizer, parts):
    """Counting takes tiktoken's fast ordinary path unless the text holds a special token's text."""
    text = "".join(parts)
    expected = len(tokenizer.hf.backend_tokenizer.encode(text, add_special_tokens=False).ids)
    assert tokenizer.count(text) == tokenizer.count_many([text, "x"])[0] == expected
