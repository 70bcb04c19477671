"""Locate the data folders that ship with the package (`templates/`, `data_cards/`).

In a wheel they live inside the package (`longtasks/_templates`, `longtasks/_data_cards`, see
pyproject's force-include); in a source checkout or editable install they are the repository's
top-level folders. Code never reads them through a path relative to the working directory.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _locate(installed_name: str, source_name: str) -> Path:
    installed = _PACKAGE_DIR / installed_name
    if installed.is_dir():
        return installed
    source = _PACKAGE_DIR.parent / source_name
    if source.is_dir():
        return source
    raise FileNotFoundError(
        f"cannot find the packaged '{source_name}' folder (looked in {installed} and {source}); "
        "reinstall longtasks"
    )


@cache
def templates_dir() -> Path:
    """Folder holding the jinja2 templates (prompts, story sentences, filler)."""
    return _locate("_templates", "templates")


@cache
def data_cards_dir() -> Path:
    """Folder holding the dataset-card templates and per-task descriptions."""
    return _locate("_data_cards", "data_cards")
