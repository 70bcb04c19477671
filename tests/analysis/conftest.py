"""The analysis tests reuse the shared tiny-model factory of the sparse tests (a tiny random Qwen2 with the
offline Qwen2.5 tokenizer, saved to a folder) instead of building their own."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "sparse" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_sparse_tiny_models", _path)
assert _spec is not None and _spec.loader is not None, _path
_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_models)

saved_tiny_qwen2 = _models.saved_tiny_qwen2
