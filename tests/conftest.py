"""Shared fixtures. Every test runs offline: hub access is switched off for the whole session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from longtasks.tokenizer import LengthTokenizer, load_tokenizer


@pytest.fixture(scope="session")
def tokenizer() -> LengthTokenizer:
    return load_tokenizer()
