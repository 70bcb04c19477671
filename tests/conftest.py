"""Shared fixtures. Every test runs offline: hub access is switched off for the whole session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The QA tasks read small test-only fixtures in their sources' real schemas (tests/qa/fixtures), never the Hub.
os.environ.setdefault("LONGTASKS_QA_SOURCE_SQUAD", __file__.replace("conftest.py", "qa/fixtures/squad_v2"))
os.environ.setdefault("LONGTASKS_QA_SOURCE_QUALITY", __file__.replace("conftest.py", "qa/fixtures/quality"))
os.environ.setdefault(
    "LONGTASKS_QA_SOURCE_TOEFL", __file__.replace("conftest.py", "qa/fixtures/toeflqa.jsonl")
)

import pytest

from longtasks.tokenizer import LengthTokenizer, load_tokenizer


@pytest.fixture(scope="session")
def tokenizer() -> LengthTokenizer:
    return load_tokenizer()
