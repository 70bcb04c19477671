"""Output paths checked before any work starts, and files written so that no half-file is ever left."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _exists(path: Path, option: str, shown: Path) -> bool:
    """`path.exists()`, but a folder that cannot be searched is a one-line error, not a traceback."""
    try:
        return path.exists()
    except OSError as error:
        raise ValueError(
            f"{option} {shown}: cannot look at {path} ({error.strerror or error}); choose a folder you can write to"
        ) from None


def _writable(folder: Path) -> bool:
    """Whether a file can be created in `folder`. `os.access` alone says yes to root on read-only mounts and
    on /sys or /proc, so a nameless temporary file is also created (and dropped at once) to be sure."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def _nearest_folder(path: Path, option: str) -> Path:
    """The nearest existing folder above `path`; ValueError when an existing part above it is a file."""
    nearest = Path(path.anchor or ".")
    for part in reversed(path.parents):
        if not _exists(part, option, path):
            break
        if not part.is_dir():
            raise ValueError(
                f"{option} {path}: {part} is a file, not a folder; choose a path inside a folder"
            )
        nearest = part
    return nearest


def _check_writable(folder: Path, option: str, path: Path) -> None:
    if not _writable(folder):
        raise ValueError(
            f"{option} {path}: the folder {folder.absolute()} is not writable; choose a folder you can write to"
        )


def check_output_file(path: Path | None, option: str = "--out") -> None:
    """ValueError unless `path` can be written as a file: not a folder, every part above it a folder, its
    folder existing and writable. Checked before any work, so a long run never fails at its last step."""
    if path is None:
        return
    if _exists(path, option, path) and path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name, e.g. {path / 'report.json'}")
    nearest = _nearest_folder(path, option)
    if nearest != path.parent:
        raise ValueError(f"{option} {path}: the folder {path.parent} does not exist; create it first")
    _check_writable(nearest, option, path)


def check_output_folder(path: Path, option: str = "--out") -> None:
    """ValueError unless `path` can be used as an output folder: a folder or nothing yet, every part above it
    a folder, and the nearest existing folder writable (missing folders are created in it)."""
    if path.is_symlink() and not path.exists():
        raise ValueError(
            f"{option} {path} is a link to nothing ({os.readlink(path)}); remove it or choose a folder"
        )
    if _exists(path, option, path):
        if not path.is_dir():
            raise ValueError(
                f"{option} {path} is a file, not a folder; choose a folder (it is created if missing)"
            )
        _check_writable(path, option, path)
        return
    _check_writable(_nearest_folder(path, option), option, path)


def write_text_atomically(path: Path, text: str) -> None:
    """Write to a temporary name beside `path`, then rename: readers never see half a file, and a failed
    write (a full disk) leaves no temporary file behind."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
