"""Offline checks that an output folder is ready to publish.

A published dataset must load with one `datasets.load_dataset` call per config and hold exactly the
rows its manifest promises; these checks run before any upload (and are all `--dry-run` does), so a
broken folder is refused before anything reaches the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def _check_shards(out_dir: Path, entry: ConfigEntry) -> list[Path]:
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


def validate_folder(out_dir: Path | str) -> FolderReport:
    """Check manifest completeness, shards, row counts, the card and that every config loads."""
    out_dir = Path(out_dir)
    entries = config_entries(load_manifest(out_dir))
    _check_complete(out_dir, entries)
    shards = {entry.name: _check_shards(out_dir, entry) for entry in entries}
    card_path = out_dir / CARD_NAME
    if not card_path.is_file():
        raise DatasetFolderError(f"{out_dir} has no {CARD_NAME}: run `longtasks export {out_dir}` first")
    check_card(card_path.read_text(encoding="utf-8"), entries, where=str(card_path))
    for entry in entries:
        _check_loads(out_dir, entry, shards[entry.name])
    files = [path for entry in entries for path in shards[entry.name]]
    return FolderReport(
        out_dir=out_dir, configs=entries, data_files=files, rows=sum(e.num_samples for e in entries)
    )
