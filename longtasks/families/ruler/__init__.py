"""The RULER family, in the form the seed paper used: key-value needles in a haystack of key-value
sentences (NIAH), variable-assignment chains among noise (VT), and the most common words of a long
numbered list (CWE). Every sample is sized to the exact length in the user's tokenizer."""
