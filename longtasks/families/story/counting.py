"""Token counts of the story's pieces (sentences with their leading space).

`LengthTokenizer.count_many` is as fast as a loop over `encode_ordinary` when no piece holds a special
token's text; `keep=True` marks pieces that recur in every sample (the scenery corpus), whose counts the
tokenizer then keeps to count whole prompts sentence by sentence.
"""

from __future__ import annotations

from longtasks.tokenizer import LengthTokenizer


def count_pieces(tokenizer: LengthTokenizer, pieces: list[str], keep: bool = False) -> list[int]:
    """`tokenizer.count_many(pieces, keep=keep)`."""
    return tokenizer.count_many(pieces, keep=keep)
