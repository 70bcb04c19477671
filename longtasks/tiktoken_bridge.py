"""Count with tiktoken for a user's byte-level BPE tokenizer (Llama 3, Qwen, GPT-2 style).

tiktoken encodes long texts several times faster than the `tokenizers` Rust path. A byte-level BPE whose
token ids follow its merge order is the same function in both libraries, so its `tokenizer.json` (vocab,
pre-tokenisation regex, added tokens) is turned into a `tiktoken.Encoding` — and used only after it
returned exactly the Hugging Face ids on probe texts. Anything else (SentencePiece, WordPiece, byte
fallback, other normalisers) keeps the Hugging Face path.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""The regex of a `ByteLevel` pre-tokeniser with `use_regex: true` (GPT-2's)."""

PROBES = (
    "Hello world! The value for key 9yv0m6zk-tg9exr3h-19lp4wcj is: 0jbjxarl-9v4ogipx.",
    "Chapter 12\nShe bought an antique brass compass.  VAR ABCDE = 12345. VAR FGHIJ = VAR ABCDE.\n\n",
    "1. aardvark\n2. mezzanine\n10. spaghetti\n1024. honesty\n   \t trailing  ",
    "Ünïcødé — “quotes”, naïve café, 東京, emoji 🙂, ½ and ﬁ ligatures; don't, I'll, we're.",
    "<|im_start|>user\nQuestion?<|im_end|>\n<|im_start|>assistant\n<s>[INST] hi [/INST]</s>",
)


@dataclass(frozen=True)
class Bridge:
    encoding: Any  # tiktoken.Encoding
    normalize: Callable[[str], str] | None


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-to-printable-character table, inverted (byte-level BPE vocabularies use it)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _pattern(pre_tokenizer: dict[str, Any] | None) -> str | None:
    if not pre_tokenizer:
        return None
    if pre_tokenizer.get("type") == "ByteLevel":
        ok = pre_tokenizer.get("use_regex", True) and not pre_tokenizer.get("add_prefix_space", False)
        return GPT2_PATTERN if ok else None
    if pre_tokenizer.get("type") != "Sequence":
        return None
    steps = pre_tokenizer.get("pretokenizers") or []
    if len(steps) != 2:
        return None
    split, byte_level = steps
    regex = (split.get("pattern") or {}).get("Regex")
    if (
        split.get("type") != "Split"
        or regex is None
        or split.get("behavior") != "Isolated"
        or split.get("invert")
        or byte_level.get("type") != "ByteLevel"
        or byte_level.get("use_regex", True)
        or byte_level.get("add_prefix_space", False)
    ):
        return None
    return regex


def _normalizer(spec: dict[str, Any] | None) -> Callable[[str], str] | bool | None:
    """None: no normaliser; a function for NFC; False: one tiktoken cannot reproduce."""
    if not spec:
        return None
    if spec.get("type") == "NFC":
        return _nfc
    return False


def _nfc(text: str) -> str:
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def _state(component: Any) -> dict[str, Any] | None:
    """A tokenizers component (normaliser, pre-tokeniser, post-processor) as its JSON description."""
    return None if component is None else json.loads(component.__getstate__())


_PLAIN_POST_PROCESSORS = ("ByteLevel", "TemplateProcessing")


def _plain_post_processor(spec: dict[str, Any] | None) -> bool:
    """Whether the post-processor only adds special tokens (counted apart) and offsets: none, ByteLevel,
    TemplateProcessing, or a Sequence of those (Llama 3's tokenizer.json)."""
    if spec is None:
        return True
    if spec.get("type") == "Sequence":
        return all(_plain_post_processor(step) for step in spec.get("processors") or [])
    return spec.get("type") in _PLAIN_POST_PROCESSORS


def tiktoken_bridge(hf: Any) -> Bridge | None:
    """A verified tiktoken encoding equal to `hf`'s tokenizer, or None when it cannot be built.

    Reads the backend's components one by one (the whole tokenizer.json, merges included, is ~7 MB of JSON).
    """
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is None:
        return None
    model = backend.model
    if (
        type(model).__name__ != "BPE"
        or getattr(model, "byte_fallback", False)
        or getattr(model, "dropout", None)
        or getattr(model, "continuing_subword_prefix", None)
        or getattr(model, "end_of_word_suffix", None)
        or not _plain_post_processor(_state(backend.post_processor))
    ):
        return None
    pattern = _pattern(_state(backend.pre_tokenizer))
    normalize = _normalizer(_state(backend.normalizer))
    if pattern is None or normalize is False:
        return None
    decode = _byte_decoder()
    special = {token.content: token_id for token_id, token in backend.get_added_tokens_decoder().items()}
    ranks: dict[bytes, int] = {}
    for token, rank in backend.get_vocab(with_added_tokens=False).items():
        if token in special:
            continue
        if not all(ch in decode for ch in token):
            return None
        ranks[bytes(decode[ch] for ch in token)] = rank
    try:
        import tiktoken

        encoding = tiktoken.Encoding(
            name=f"bridge-{id(hf)}", pat_str=pattern, mergeable_ranks=ranks, special_tokens=special
        )
        for probe in PROBES:
            text = normalize(probe) if normalize else probe
            if (
                encoding.encode(text, allowed_special="all")
                != backend.encode(probe, add_special_tokens=False).ids
            ):
                return None
    except Exception:  # tiktoken rejects some vocabularies (e.g. duplicate ranks): keep the HF path
        return None
    return Bridge(encoding, normalize or None)
