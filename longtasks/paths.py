"""Output paths checked before any work starts, and files written so that no half-file is ever left."""

from __future__ import annotations

import os
from pathlib import Path


def check_output_file(path: Path | None) -> None:
    """ValueError unless `path` can be written as a file: not a folder, and its folder exists."""
    if path is None:
        return
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; give a file name, e.g. {path / 'report.json'}")
    if not path.parent.is_dir():
        raise ValueError(f"--out {path}: the folder {path.parent} does not exist; create it first")


def check_output_folder(path: Path) -> None:
    """ValueError when `path` exists but is not a folder (a generated dataset is a folder)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file, not a folder; choose a folder for the dataset")


def write_text_atomically(path: Path, text: str) -> None:
    """Write to a temporary name beside `path`, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
