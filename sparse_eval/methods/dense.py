"""Registers the dense baseline under the name "dense"."""

from sparse_eval.base import DenseMethod
from sparse_eval.registry import register_method

register_method(DenseMethod)

__all__ = ["DenseMethod"]
