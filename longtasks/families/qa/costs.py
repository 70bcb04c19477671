"""Token costs of a pool's pieces in one tokenizer, counted once and kept on the tokenizer's `memo`.

A document appears in the context as ``Document <i>:\\n<text>`` and documents are joined by a blank line;
its cost is split into a header cost (by number) and a body cost (its text with the blank line after it,
where a final full stop and the newlines merge into one token). Word-prefix costs of a document (for the
one document cut to fill the length) are computed when it is first cut.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, field

from longtasks.families.qa.records import Pool
from longtasks.tokenizer import LengthTokenizer

SEPARATOR = "\n\n"
_CHUNK = 512
_MAX_COUNTS = 24
"""Counts one cut may take (a binary search over a 100k-word document needs 17)."""
_WORD = re.compile(r"\s*\S+")


def header(number: int) -> str:
    return f"Document {number}:\n"


def piece(number: int, text: str) -> str:
    """A document as it appears in the context."""
    return header(number) + text


@dataclass
class PoolCosts:
    """Per-tokenizer costs of a pool: document bodies, question texts, headers and word prefixes."""

    tokenizer: LengthTokenizer
    pool: Pool
    bodies: list[int] = field(init=False)
    questions: list[list[int]] = field(init=False)
    _headers: list[int] = field(default_factory=lambda: [0], init=False)
    _prefixes: dict[int, tuple[list[int], list[int]]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        documents = self.pool.documents
        self.bodies = self.tokenizer.count_many([d.text + SEPARATOR for d in documents])
        flat = self.tokenizer.count_many([q.text for d in documents for q in d.questions])
        counts = iter(flat)
        self.questions = [[next(counts) for _ in d.questions] for d in documents]

    def header(self, number: int) -> int:
        """Tokens of the heading of document `number`."""
        while len(self._headers) <= number:
            start = len(self._headers)
            self._headers += self.tokenizer.count_many([header(i) for i in range(start, start + _CHUNK)])
        return self._headers[number]

    def headers(self, count: int) -> int:
        """Tokens of the headings of documents 1..count."""
        self.header(count)
        return sum(itertools.islice(self._headers, 1, count + 1))

    def prefix_words(self, index: int) -> tuple[list[int], list[int]]:
        """(character end of each word, estimated tokens of the text up to it) of document `index`.

        With a tiktoken encoding the document is encoded once and each word end is located among the token
        start offsets; otherwise every word (with its leading space) is counted on its own."""
        if index not in self._prefixes:
            text = self.pool.documents[index].text
            ends = [m.end() for m in _WORD.finditer(text)]
            encoding = self.tokenizer.fast_encoding
            if encoding is not None and self.tokenizer.normalize is None:
                _, starts = encoding.decode_with_offsets(encoding.encode(text, allowed_special="all"))
                cumulative = [bisect.bisect_left(starts, end) for end in ends]
            else:
                pieces = [text[a:b] for a, b in zip([0, *ends], ends, strict=False)]
                cumulative = list(itertools.accumulate(self.tokenizer.count_many(pieces)))
            self._prefixes[index] = (ends, cumulative)
        return self._prefixes[index]

    def cut(self, index: int, number: int, tokens: int) -> tuple[str, int] | None:
        """A word prefix of document `index` whose piece (heading `number`, prefix, blank line) costs exactly
        `tokens`, by counting; None if none does (a word may add 2+ tokens at the right place).

        The summed word costs give the first guess (exact for byte-level BPE); a binary search on counted
        prefixes handles tokenizers whose pieces are not additive (SentencePiece-style word markers)."""
        ends, cumulative = self.prefix_words(index)
        text = self.pool.documents[index].text
        counted: dict[int, int] = {}

        def cost(words: int) -> int:
            if words not in counted:
                counted[words] = self.tokenizer.count(piece(number, text[: ends[words - 1]]) + SEPARATOR)
            return counted[words]

        fixed = self.header(number) + self.tokenizer.count(SEPARATOR)
        low, high = 1, len(ends) - 1  # a true prefix: at least one word, not the whole document
        if high < low or cost(low) > tokens or cost(high) < tokens:
            return None
        guess = min(high, max(low, bisect.bisect_left(cumulative, tokens - fixed) + 1))
        while low <= high and len(counted) < _MAX_COUNTS:
            words = guess if guess not in counted else (low + high) // 2
            found = cost(words)
            if found == tokens:
                return text[: ends[words - 1]], tokens
            low, high = (words + 1, high) if found < tokens else (low, words - 1)
            guess = (low + high) // 2
        return None


def pool_costs(tokenizer: LengthTokenizer, pool: Pool) -> PoolCosts:
    """The costs of `pool` in `tokenizer`, computed once per tokenizer object."""
    key = f"qa_costs:{pool.sha256}"
    if key not in tokenizer.memo:
        tokenizer.memo[key] = PoolCosts(tokenizer, pool)
    return tokenizer.memo[key]
