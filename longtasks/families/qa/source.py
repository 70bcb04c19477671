"""Where a QA task's documents come from, read through `datasets` without network surprises.

A source is one string (the task's `source` knob):

- ``owner/name@<40-hex commit>``: a Hub dataset pinned to a commit, read from the local `datasets` cache
  only. Generation never downloads (a missing dataset is one clear error, before anything is written);
  ``python -m longtasks.families.qa.fetch TASK`` downloads it once, with `datasets.load_dataset`.
- a local path: a `save_to_disk` folder, a folder of data files `datasets` reads (parquet, JSON lines;
  splits from the file names), or one .parquet / .jsonl / .json file (not CSV: every QA schema has a
  list-valued column, which CSV cannot hold);
- an ``http(s)://`` URL of such a file, downloaded and cached by `datasets`.

Each task's default is its pinned Hub dataset; the environment variable ``LONGTASKS_QA_SOURCE_<NAME>``
replaces the default (how the tests point every task at its small fixture).
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasets

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
_NO_LISTS = (".csv", ".tsv")
"""Table formats that cannot hold the list columns (answers, options, questions) every QA schema has."""


class SourceError(ValueError):
    """A source that is malformed, missing or unreadable; the message says how to fix it."""


@dataclass(frozen=True)
class Source:
    """A parsed `source` knob: kind is "hub", "path" or "url"; `revision` is the Hub commit."""

    kind: str
    location: str
    revision: str | None = None

    @property
    def pin(self) -> str:
        """What the rows record as the source's revision: the commit, else "local" or "url"."""
        return self.revision or self.kind.replace("path", "local")


def env_name(task: str) -> str:
    """``qa_squad`` -> ``LONGTASKS_QA_SOURCE_SQUAD``."""
    return "LONGTASKS_QA_SOURCE_" + task.removeprefix("qa_").upper()


def default_source(task: str, hub_default: str) -> str:
    """The task's source unless the `source` knob is given: the environment variable, else the Hub pin."""
    return os.environ.get(env_name(task)) or hub_default


def parse_source(task: str, text: str) -> Source:
    """The source a knob value names; SourceError naming what works when it names none."""
    where = f"{task}: " if task else ""
    text = text.strip()
    if re.match(r"^https?://", text):
        return Source("url", text)
    path = Path(text).expanduser()
    if text and path.exists():
        return Source("path", str(path.resolve()))
    name, at, revision = text.partition("@")
    suffix = Path(name).suffix.lower()
    looks_like_file = text.startswith((".", "/", "~")) or suffix in _FILE_BUILDERS or suffix in _NO_LISTS
    if _HUB_ID.match(name) and at and _COMMIT.match(revision):
        return Source("hub", name, revision)
    if _HUB_ID.match(name) and not looks_like_file:
        raise SourceError(
            f"{where}source {text!r} has no pinned revision: give the Hub dataset as owner/name@<full 40-character "
            "commit> so that the data can be rebuilt exactly"
        )
    raise SourceError(
        f"{where}source {text!r} is not an existing file or folder, an http(s) URL, or a Hub dataset "
        "owner/name@<commit>"
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """No `datasets` progress bars while a source is read (the CLI draws its own)."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def load_rows(task: str, source: Source, split: str) -> datasets.Dataset:
    """The split of `source` as a `datasets.Dataset`; SourceError (one line) when it cannot be read."""
    import datasets

    _refuse_tables(task, source)
    try:
        with _quiet():
            if source.kind == "hub":
                return _from_cache(task, source, split)
            loaded = _load_local(source)
    except SourceError:
        raise
    except Exception as error:  # datasets raises many types (FileNotFoundError, DatasetGenerationError, ...)
        reason = f"{type(error).__name__}: " + " ".join(str(error).split())[:300]
        path = Path(source.location)
        if source.kind == "path" and path.is_file() and path.stat().st_size == 0:
            reason = "the file is empty"  # datasets' own error is a bare StopIteration
        raise SourceError(f"{task}: cannot read source {source.location!r}: {reason}") from None
    if isinstance(loaded, datasets.Dataset):
        return loaded
    if split in loaded:
        return loaded[split]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    raise SourceError(
        f"{task}: source {source.location!r} has splits {sorted(loaded)} but no {split!r}; keep only the one to use"
    )


def _suffix(source: Source) -> str:
    return Path(source.location.split("?")[0] if source.kind == "url" else source.location).suffix.lower()


def _refuse_tables(task: str, source: Source) -> None:
    """A CSV file cannot hold the list columns of any QA schema: refused before `datasets` reads it."""
    suffix = _suffix(source)
    if source.kind != "hub" and suffix in _NO_LISTS:
        raise SourceError(
            f"{task}: source {source.location!r} is a {suffix[1:].upper()} file, which cannot hold the list "
            "columns (answers, options, questions) the QA schemas need: give JSON lines (.jsonl), .json or .parquet"
        )


def _load_local(source: Source) -> datasets.Dataset | datasets.DatasetDict:
    import datasets

    suffix = _suffix(source)
    if source.kind == "url":
        return datasets.load_dataset(_FILE_BUILDERS.get(suffix, "json"), data_files=source.location)
    path = Path(source.location)
    if path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()):
        return datasets.load_from_disk(str(path))
    if path.is_dir():
        if glob.escape(str(path)) != str(path):  # datasets globs below the folder with the path as a pattern
            raise SourceError(
                f"source folder {str(path)!r} has one of [ ] * ? in its path, which datasets reads as a pattern; "
                "give one of its data files instead, or move the folder"
            )
        return datasets.load_dataset(str(path))
    builder = _FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise SourceError(
            f"source file {str(path)!r} has an unknown type: use .parquet, .jsonl or .json, or a folder"
        )
    return datasets.load_dataset(builder, data_files=glob.escape(str(path)))  # a file name, not a pattern


def hub_cache_dirs(source: Source) -> list[Path]:
    """Folders of the local `datasets` cache that hold `source` at its exact commit."""
    import datasets
    from datasets.naming import camelcase_to_snakecase

    owner, name = source.location.split("/")
    root = Path(datasets.config.HF_DATASETS_CACHE)
    pattern = root / f"{owner}___{camelcase_to_snakecase(name)}" / "*" / "*" / str(source.revision)
    return sorted(Path(p) for p in glob.glob(str(pattern)) if Path(p, "dataset_info.json").is_file())


def _from_cache(task: str, source: Source, split: str) -> datasets.Dataset:
    """Read a Hub dataset at its pinned commit from the cache, never from the network."""
    from datasets.packaged_modules.cache.cache import Cache

    folders = [f for f in hub_cache_dirs(source) if split in _splits(f)]
    if not folders:
        raise SourceError(
            f"{task}: the dataset {source.location} (revision {source.revision}) is not in the local datasets "
            f"cache; download it once with network access: python -m longtasks.families.qa.fetch {task} "
            f"(or give a local copy with --knob {task}.source=PATH)"
        )
    folder = folders[0]
    builder = Cache(
        cache_dir=str(folder.parents[3]),
        repo_id=source.location,
        dataset_name=source.location.split("/")[1],
        config_name=folder.parts[-3],
        version=folder.parts[-2],
        hash=folder.parts[-1],
    )
    return builder.as_dataset(split=split)


def _splits(folder: Path) -> set[str]:
    info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
    return set((info.get("splits") or {}).keys())
