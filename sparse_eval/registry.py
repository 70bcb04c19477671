"""Methods registered by name, so a string from a CLI or lm-eval `--model_args` picks one."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from sparse_eval.base import SparseMethod

_REGISTRY: dict[str, type[SparseMethod]] = {}

M = TypeVar("M", bound=type[SparseMethod])


def register_method(cls: M) -> M:
    """Class decorator: make a `SparseMethod` subclass available under its `name`."""
    if not (isinstance(cls, type) and issubclass(cls, SparseMethod)):
        raise TypeError(f"register_method expects a SparseMethod subclass, got {cls!r}")
    name = getattr(cls, "name", "")
    if not name:
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute `name` to be registered")
    existing = _REGISTRY.get(name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"method name {name!r} is already taken by {existing.__qualname__}")
    _REGISTRY[name] = cls
    return cls


def list_methods() -> list[str]:
    """Registered method names, sorted."""
    return sorted(_REGISTRY)


def method_class(name: str) -> type[SparseMethod]:
    """The class registered under `name` (clear error listing the names that exist)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown sparse method {name!r}; available: {', '.join(list_methods())}") from None


def get_method(name: str, **kwargs: Any) -> SparseMethod:
    """Instantiate a registered method; unknown keyword arguments are rejected with the valid field names."""
    cls = method_class(name)
    valid = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        raise TypeError(f"method {name!r} has no argument(s) {unknown}; valid arguments: {sorted(valid)}")
    return cls(**kwargs)
