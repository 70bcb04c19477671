"""Importing this package registers every method module that is present."""

import importlib

_MODULES = ("dense", "vertical_slash", "block_sparse", "flexprefill", "quest", "snapkv", "ada_snapkv")

for _name in _MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # a method module not written yet; its siblings still register
        if exc.name != f"{__name__}.{_name}":
            raise
