"""Read an output folder written by `longtasks generate`: its manifest and which configs are usable.

The hub code reads `longtasks.json` itself (a documented, versioned format) instead of importing the
generator, so `longtasks.dataset_dir` can call `write_card` without an import cycle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "longtasks.json"
CARD_NAME = "README.md"
DATA_DIR = "data"
SPLIT = "test"
PARTIAL_SUFFIX = ".partial"
"""Files being written end in this until renamed into place; `generate` removes any an interrupt left."""


class DatasetFolderError(ValueError):
    """The folder is not a (complete) longtasks output folder; the message says what to do."""


@dataclass(frozen=True)
class ConfigEntry:
    """One task x length config as the manifest describes it."""

    name: str
    task: str
    length: int
    num_samples: int
    seed: int
    knobs: dict[str, Any]
    config_hash: str
    shards: list[str]
    complete: bool

    @property
    def data_files(self) -> list[str]:
        """The shard files (relative to the folder) the card lists for `datasets`: named one by one, not by a
        glob, because `datasets` keys its cache of a local folder by the card's `configs`, not by the files'
        content. With the shard names carrying the settings' hash, other rows mean another cache entry."""
        return sorted(self.shards)


def load_manifest(out_dir: Path | str) -> dict[str, Any]:
    """The parsed manifest of `out_dir`, with a clear error when it is missing or not JSON."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        raise DatasetFolderError(
            f"{Path(out_dir)} has no {MANIFEST_NAME}: point at a folder written by "
            "`longtasks generate ... --out DIR`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DatasetFolderError(f"{path} is not valid JSON ({error}); regenerate the folder") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("configs"), dict):
        raise DatasetFolderError(f"{path} has no 'configs' mapping; regenerate the folder")
    return manifest


def config_entries(manifest: dict[str, Any]) -> list[ConfigEntry]:
    """Every config of the manifest, in manifest order (the order the generator wrote them)."""
    entries = []
    for name, raw in manifest["configs"].items():
        try:
            entries.append(
                ConfigEntry(
                    name=name,
                    task=str(raw["task"]),
                    length=int(raw["length"]),
                    num_samples=int(raw.get("num_samples", manifest.get("num_samples", 0))),
                    seed=int(raw.get("seed", manifest.get("seed", 0))),
                    knobs=dict(raw.get("knobs") or {}),
                    config_hash=str(raw.get("config_hash", "")),
                    shards=[str(s) for s in raw.get("shards", [])],
                    complete=bool(raw.get("complete", False)),
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetFolderError(
                f"manifest config {name!r} is malformed ({error!r}); regenerate the folder"
            ) from error
    return entries


def shard_files(out_dir: Path | str, config: str) -> list[Path]:
    """Parquet files in `config`'s folder, sorted (the manifest's shards, unless something else was put there)."""
    return sorted((Path(out_dir) / DATA_DIR / config).glob("*.parquet"))
