"""Token counts of many short pieces, faster than `LengthTokenizer.count_many` on the tiktoken path.

`count_many` encodes with `allowed_special="all"`, whose special-token scan costs more than encoding a
short sentence (~15 µs a sentence). When no piece contains a special token's text, plain
`encode_ordinary` gives the very same ids (~5 µs a sentence); otherwise, and on other paths, this is
`count_many` itself.
"""

from __future__ import annotations

import re

from longtasks.tokenizer import LengthTokenizer


def count_pieces(tokenizer: LengthTokenizer, pieces: list[str]) -> list[int]:
    """`tokenizer.count_many(pieces)`, computed faster where that is exact."""
    encoding = tokenizer.fast_encoding
    if encoding is None or tokenizer.normalize is not None:
        return tokenizer.count_many(pieces)
    if _specials(tokenizer).search("\x00".join(pieces)):
        return tokenizer.count_many(pieces)
    encode = encoding.encode_ordinary
    return [len(encode(piece)) for piece in pieces]


def _specials(tokenizer: LengthTokenizer) -> re.Pattern[str]:
    """A pattern matching any special token's text (once per tokenizer)."""
    key = "story_special_tokens"
    if key not in tokenizer.memo:
        specials = sorted(tokenizer.fast_encoding.special_tokens_set, key=len, reverse=True)
        tokenizer.memo[key] = re.compile("|".join(map(re.escape, specials)) or r"(?!)")
    return tokenizer.memo[key]
