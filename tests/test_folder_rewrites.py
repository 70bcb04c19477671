"""A folder written again (other settings, more samples, an interrupted rerun) reads back exactly what it
holds through `datasets.load_dataset`, whose cache of a local folder is keyed by what the card names."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard

import longtasks.dataset_dir as dataset_dir
from longtasks.dataset_dir import generate_to_dir, read_manifest

CONFIG = "ruler_vt-1k"


def write(out: Path, tokenizer, **options) -> None:
    options = {"num_samples": 3, "seed": 0, **options}
    generate_to_dir(out, ["ruler_vt"], [1024], tokenizer=tokenizer, progress=False, **options)


def loaded_ids(out: Path, cache: Path) -> list[str]:
    return datasets.load_dataset(str(out), CONFIG, split="test", cache_dir=str(cache))["id"]


def card_configs(out: Path) -> list[str]:
    return [c["config_name"] for c in DatasetCard.load(out / "README.md").data.to_dict().get("configs") or []]


def test_folders_and_rewrites_read_back_their_own_rows(tmp_path, tokenizer):
    """Two folders of one name, a folder rewritten with another seed, then with more samples: each load
    returns the rows on disk (all three used to return the first folder's cached rows)."""
    cache = tmp_path / "cache"
    first, second = tmp_path / "a" / "data", tmp_path / "b" / "data"
    write(first, tokenizer, seed=1)
    write(second, tokenizer, seed=2)
    assert loaded_ids(first, cache) == [f"ruler_vt-1024-s1-{i}" for i in range(3)]
    assert loaded_ids(second, cache) == [f"ruler_vt-1024-s2-{i}" for i in range(3)]
    write(first, tokenizer, seed=3, overwrite=True)
    assert loaded_ids(first, cache) == [f"ruler_vt-1024-s3-{i}" for i in range(3)]
    write(first, tokenizer, seed=3, num_samples=5)
    assert loaded_ids(first, cache) == [f"ruler_vt-1024-s3-{i}" for i in range(5)]


def test_an_interrupted_extension_unlists_the_config_and_the_original_command_still_runs(
    tmp_path, tokenizer, monkeypatch
):
    out = tmp_path / "data"
    write(out, tokenizer)
    assert card_configs(out) == [CONFIG]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset_dir, "generate_samples", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write(out, tokenizer, num_samples=5)
    assert card_configs(out) == []  # its old shard is gone: listing it would load fewer rows than promised
    assert read_manifest(out)["configs"][CONFIG]["complete"] is False
    monkeypatch.undo()
    write(out, tokenizer)  # no finished rows would be dropped: not refused
    assert card_configs(out) == [CONFIG]
    assert len(datasets.load_dataset(str(out), CONFIG, split="test", cache_dir=str(tmp_path / "c"))) == 3


def test_a_folder_holding_only_an_interrupted_first_write_is_used(tmp_path, tokenizer):
    out = tmp_path / "data"
    out.mkdir()
    (out / "longtasks.json.partial").write_text("{")  # killed while writing its first manifest
    write(out, tokenizer)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data", "longtasks.json"]
