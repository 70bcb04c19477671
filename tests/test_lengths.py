from __future__ import annotations

import pytest

from longtasks.lengths import format_length, parse_length, parse_lengths


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("4096", 4096),
        ("4k", 4096),
        ("32K", 32768),
        ("1M", 1 << 20),
        ("1.5k", 1536),
        (" 8k ", 8192),
        (128, 128),
    ],
)
def test_parse_length(text, tokens):
    assert parse_length(text) == tokens


@pytest.mark.parametrize("bad", ["", "abc", "4kk", "-5", "0", "1.0001k", "4g"])
def test_bad_lengths_name_the_value(bad):
    with pytest.raises(ValueError, match="length"):
        parse_length(bad)


def test_parse_lengths_keeps_order_and_dedups():
    assert parse_lengths("32k,4k,4096") == [32768, 4096]
    with pytest.raises(ValueError):
        parse_lengths(",")


@pytest.mark.parametrize("tokens", [4096, 5000, 1 << 20, 131072])
def test_format_round_trip(tokens):
    assert parse_length(format_length(tokens)) == tokens
