"""Offline checks that an output folder is ready to publish.

A published dataset must load with one `datasets.load_dataset` call per config and hold exactly the
rows its manifest promises; these checks run before any upload (and are all `--dry-run` does), so a
broken folder is refused before anything reaches the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from huggingface_hub import DatasetCard

from longtasks.hub.card import hub_configs
from longtasks.hub.folder import (
    CARD_NAME,
    SPLIT,
    ConfigEntry,
    DatasetFolderError,
    config_entries,
    load_manifest,
    shard_files,
)
from longtasks.sample import ROW_COLUMNS


@dataclass(frozen=True)
class FolderReport:
    """What validation found: the folder's configs and the files that make up the dataset."""

    out_dir: Path
    configs: list[ConfigEntry]
    data_files: list[Path]
    rows: int


def _check_complete(out_dir: Path, entries: list[ConfigEntry]) -> None:
    if not entries:
        raise DatasetFolderError(f"{out_dir} lists no configs in its manifest: nothing to publish")
    unfinished = [e.name for e in entries if not e.complete]
    if unfinished:
        raise DatasetFolderError(
            f"{out_dir} is incomplete: config(s) {', '.join(unfinished)} did not finish. Re-run the "
            "generate command recorded in longtasks.json (it resumes) before exporting or pushing"
        )


def _check_rows(parquet: pq.ParquetFile, path: Path, entry: ConfigEntry, expected: dict[str, Any]) -> None:
    """Decode every page of the shard (a file whose footer is intact can still hold corrupt data, which only
    `load_dataset` would find, after upload) and check its rows are the config's: its task and length, and
    the folder's tokenizer and chat mode (a config copied in from another folder would make the card lie)."""
    want = {"task": entry.task, "length": entry.length, **expected}
    try:
        for batch in parquet.iter_batches(batch_size=256):
            for column, value in want.items():
                found = set(batch.column(column).to_pylist())
                if found != {value}:
                    wrong = sorted(map(repr, found - {value}))
                    raise DatasetFolderError(
                        f"config {entry.name}: {path} has rows with {column} {', '.join(wrong)}, but the "
                        f"folder's is {value!r}; a folder holds one task x length per config and one tokenizer "
                        "and chat mode: regenerate the config into this folder"
                    )
    except DatasetFolderError:
        raise
    except Exception as error:  # pyarrow raises OSError/ArrowInvalid for corrupt pages
        raise DatasetFolderError(
            f"config {entry.name}: {path} is corrupt ({error}); regenerate the config"
        ) from error


def _check_shards(out_dir: Path, entry: ConfigEntry, expected: dict[str, Any]) -> list[Path]:
    """The config's files on disk must be exactly the manifest's shards, with exactly its rows."""
    on_disk = shard_files(out_dir, entry.name)
    found = {p.relative_to(out_dir).as_posix() for p in on_disk}
    listed = set(entry.shards)
    if missing := sorted(listed - found):
        raise DatasetFolderError(f"config {entry.name}: shard file(s) missing: {', '.join(missing)}")
    if stray := sorted(found - listed):
        raise DatasetFolderError(
            f"config {entry.name}: parquet file(s) not in the manifest would be loaded too: "
            f"{', '.join(stray)}; delete them or regenerate the config"
        )
    rows = 0
    for path in on_disk:
        try:
            parquet = pq.ParquetFile(path)
        except Exception as error:  # pyarrow raises ArrowInvalid/OSError for broken files
            raise DatasetFolderError(f"config {entry.name}: cannot read {path} ({error})") from error
        columns = set(parquet.schema_arrow.names)
        if lacking := [c for c in ROW_COLUMNS if c not in columns]:
            raise DatasetFolderError(f"config {entry.name}: {path} lacks column(s) {', '.join(lacking)}")
        _check_rows(parquet, path, entry, expected)
        rows += parquet.metadata.num_rows
    if rows != entry.num_samples:
        raise DatasetFolderError(
            f"config {entry.name}: the manifest promises {entry.num_samples} rows but its files hold {rows}; "
            "regenerate the config"
        )
    return on_disk


def check_card(text: str, entries: list[ConfigEntry], *, where: str) -> DatasetCard:
    """The card must parse with huggingface_hub and its `configs` must be exactly the folder's."""
    try:
        card = DatasetCard(text)
    except Exception as error:  # huggingface_hub raises ValueError/YAMLError for a broken header
        raise DatasetFolderError(f"{where} does not parse as a dataset card ({error})") from error
    declared = card.data.to_dict().get("configs") or []
    if sorted(map(repr, declared)) != sorted(map(repr, hub_configs(entries))):
        names = [c.get("config_name") for c in declared]
        raise DatasetFolderError(
            f"{where} lists configs {names} but the folder has {[e.name for e in entries]}; "
            "run `longtasks export DIR` to rewrite the card"
        )
    return card


def _check_loads(out_dir: Path, entry: ConfigEntry, shards: list[Path]) -> None:
    """Resolve the config exactly as `datasets.load_dataset(folder, config)` does (README configs ->
    data files) and check it reads exactly the manifest's shards. Rows and columns were already checked
    with pyarrow; nothing is copied into the `datasets` cache, so this stays cheap for huge folders.
    (A streaming read was avoided: a suspended streaming reader can abort the interpreter at exit.)
    """
    import datasets

    try:
        builder = datasets.load_dataset_builder(str(out_dir), entry.name)
        resolved = builder.config.data_files or {}
    except Exception as error:  # datasets raises many types (ValueError, FileNotFoundError, ...)
        raise DatasetFolderError(
            f"config {entry.name} does not load with datasets.load_dataset({str(out_dir)!r}, "
            f"{entry.name!r}): {error}"
        ) from error
    found = sorted(Path(str(f)).resolve() for f in resolved.get(SPLIT, []))
    if set(resolved) != {SPLIT} or found != sorted(p.resolve() for p in shards):
        raise DatasetFolderError(
            f"config {entry.name}: datasets resolves splits {sorted(resolved)} with files "
            f"{[str(f) for f in found]}, not the manifest's {SPLIT} shards; run `longtasks export DIR`"
        )


@dataclass(frozen=True)
class CheckedData:
    """The configs and their shards, as `check_data` found them."""

    out_dir: Path
    configs: list[ConfigEntry]
    shards: dict[str, list[Path]]


def check_data(out_dir: Path | str) -> CheckedData:
    """Check what the card is written from: every config finished, its shards exactly the manifest's and
    readable, with the manifest's rows, task, length, tokenizer and chat mode."""
    out_dir = Path(out_dir)
    manifest = load_manifest(out_dir)
    entries = config_entries(manifest)
    _check_complete(out_dir, entries)
    expected = {key: manifest[key] for key in ("tokenizer", "tokenizer_revision", "chat") if key in manifest}
    shards = {entry.name: _check_shards(out_dir, entry, expected) for entry in entries}
    return CheckedData(out_dir, entries, shards)


def check_publishable(data: CheckedData) -> FolderReport:
    """With the data checked: the card parses and lists exactly the configs, and every config loads."""
    out_dir, entries = data.out_dir, data.configs
    card_path = out_dir / CARD_NAME
    if not card_path.is_file():
        raise DatasetFolderError(f"{out_dir} has no {CARD_NAME}: run `longtasks export {out_dir}` first")
    check_card(card_path.read_text(encoding="utf-8"), entries, where=str(card_path))
    for entry in entries:
        _check_loads(out_dir, entry, data.shards[entry.name])
    files = [path for entry in entries for path in data.shards[entry.name]]
    return FolderReport(
        out_dir=out_dir, configs=entries, data_files=files, rows=sum(e.num_samples for e in entries)
    )


def validate_folder(out_dir: Path | str) -> FolderReport:
    """Check the data (`check_data`), the card and that every config loads (`check_publishable`)."""
    return check_publishable(check_data(out_dir))
