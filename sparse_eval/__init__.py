"""Training-free sparse attention for Hugging Face transformers models; one compression knob for all."""

from sparse_eval import methods as _methods  # noqa: F401  (registers the methods)
from sparse_eval.backends.pattern import BlockPattern
from sparse_eval.base import SparseMethod
from sparse_eval.compression import CompressionReport, LayerStats
from sparse_eval.generation import GenerationResult, generate
from sparse_eval.kv_cache import compress_cache
from sparse_eval.patch import SparseSession, apply
from sparse_eval.registry import get_method, list_methods, register_method

__all__ = [
    "BlockPattern",
    "CompressionReport",
    "GenerationResult",
    "LayerStats",
    "SparseMethod",
    "SparseSession",
    "apply",
    "compress_cache",
    "generate",
    "get_method",
    "list_methods",
    "register_method",
]
