"""The dataset card and offline export: the folder loads per config, the card parses and says true things."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import get_args

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _hub_folder import make_folder
from huggingface_hub import DatasetCard
from typer.testing import CliRunner

from longtasks.hub import DatasetFolderError, export, render_card, validate_folder, write_card
from longtasks.hub.card import python_equivalent, size_category
from longtasks.hub.folder import config_entries, load_manifest
from longtasks.hub.stats import DEPTH_BINS, config_stats, depth_bin
from longtasks.sample import ROW_COLUMNS, AnswerKind


def _rows(folder: Path, config: str) -> list[dict]:
    files = sorted((folder / "data" / config).glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    make_folder(out)
    return out


def test_card_parses_and_lists_every_config(folder: Path) -> None:
    path = write_card(folder)
    card = DatasetCard.load(path)
    configs = card.data.to_dict()["configs"]
    expected = list(load_manifest(folder)["configs"])
    assert [c["config_name"] for c in configs] == expected
    shards = {name: entry["shards"] for name, entry in load_manifest(folder)["configs"].items()}
    for c in configs:  # each file by name: `datasets` caches a local folder by what the card names
        assert c["data_files"] == [{"split": "test", "path": sorted(shards[c["config_name"]])}]
    data = card.data.to_dict()
    assert data["license"] == "mit"
    assert data["language"] == ["en"]
    assert "question-answering" in data["task_categories"]
    assert data["size_categories"] == ["n<1K"]
    assert data["pretty_name"]


def test_every_config_loads_with_exactly_the_generated_rows(folder: Path, tmp_path: Path) -> None:
    export(folder)
    for name in load_manifest(folder)["configs"]:
        loaded = datasets.load_dataset(str(folder), name, split="test", cache_dir=str(tmp_path / "cache"))
        assert loaded.to_list() == _rows(folder, name)
        assert len(loaded) == 5


def test_card_states_measured_numbers_and_provenance(folder: Path) -> None:
    # Change one stored row so the measured minimum differs from the configured length: the card
    # must report what the parquet holds, not what the manifest asked for.
    shard = folder / "data" / "story_multihop-2k" / "test-00000.parquet"
    rows = pq.read_table(shard).to_pylist()
    rows[0]["input_tokens"] = 2047
    pq.write_table(pa.Table.from_pylist(rows), shard)
    text = render_card(folder)
    assert "| `story_multihop-2k` | story_multihop | 2048 | 5 | 2047 | 2048 |" in text
    assert "| `story_retrieval-1k` | story_retrieval | 1024 | 5 | 1024 | 1024 |" in text
    manifest = load_manifest(folder)
    assert manifest["tokenizer_revision"] in text
    assert manifest["command"] in text
    for entry in manifest["configs"].values():
        assert entry["config_hash"] in text
    assert "arXiv:2504.17768" in text and "nawrot2025sparsefrontier" in text
    assert "Chat mode is off" in text
    for section in ("## Intended use", "## Limitations", "## Exact length", "## Evidence depth"):
        assert section in text


def test_depth_histogram_counts_every_evidence_position(folder: Path) -> None:
    entries = config_entries(load_manifest(folder))
    text = render_card(folder)
    for entry in entries:
        rows = _rows(folder, entry.name)
        depths = [d for row in rows for d in row["evidence_depths"]]
        expected = [0] * DEPTH_BINS
        for d in depths:
            expected[min(int(d * DEPTH_BINS), DEPTH_BINS - 1)] += 1
        line = f"| `{entry.name}` |" + "".join(f" {n} |" for n in expected)
        assert line in text
        assert sum(expected) == len(depths) > 0


@pytest.mark.parametrize(
    ("depth", "expected"), [(0.0, 0), (0.0999, 0), (0.1, 1), (0.55, 5), (0.9999, 9), (1.0, 9)]
)
def test_depth_bin_edges(depth: float, expected: int) -> None:
    assert depth_bin(depth) == expected


@pytest.mark.parametrize(
    ("rows", "label"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (99_999, "10K<n<100K")]
)
def test_size_category(rows: int, label: str) -> None:
    assert size_category(rows) == label


def test_stats_of_empty_config_are_none() -> None:
    stats = config_stats([])
    assert stats.rows == 0 and stats.input_tokens_min is None and sum(stats.depth_histogram) == 0


def test_incomplete_config_is_left_out_but_the_rest_loads(tmp_path: Path) -> None:
    out = tmp_path / "out"
    make_folder(out, incomplete=("story_multihop-2k",))
    card = DatasetCard.load(write_card(out))
    names = [c["config_name"] for c in card.data.to_dict()["configs"]]
    assert names == ["story_retrieval-1k", "story_retrieval-2k", "story_multihop-1k"]
    assert '"story_multihop-2k"' in card.text
    loaded = datasets.load_dataset(str(out), "story_multihop-1k", split="test", cache_dir=str(tmp_path / "c"))
    assert len(loaded) == 5
    before = (out / "README.md").read_bytes()
    with pytest.raises(DatasetFolderError, match="story_multihop-2k"):
        export(out)
    assert (out / "README.md").read_bytes() == before  # a failing export writes nothing


def test_python_equivalent_passes_the_manifest_settings(folder: Path, monkeypatch) -> None:
    manifest = load_manifest(folder)
    code = python_equivalent(manifest, config_entries(manifest))
    assert code is not None
    calls = []
    import longtasks.dataset_dir as dataset_dir

    monkeypatch.setattr(dataset_dir, "generate_to_dir", lambda *a, **k: calls.append((a, k)))
    exec(code, {})
    (_args, kwargs) = calls[0]
    assert kwargs["tasks"] == ["story_retrieval", "story_multihop"]
    assert kwargs["lengths"] == [1024, 2048]
    assert kwargs["num_samples"] == 5 and kwargs["seed"] == 0 and kwargs["chat"] is False
    assert kwargs["knobs"]["story_multihop"] == manifest["configs"]["story_multihop-1k"]["knobs"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "data/story_retrieval-1k/test-00001.parquet").unlink(), "missing"),
        (
            lambda f: pq.write_table(
                pq.read_table(f / "data/story_retrieval-1k/test-00000.parquet"),
                f / "data/story_retrieval-1k/extra.parquet",
            ),
            "not in the manifest",
        ),
        (lambda f: (f / "README.md").unlink(), "no README.md"),
        (lambda f: (f / "longtasks.json").write_text("{"), "not valid JSON"),
    ],
)
def test_validation_names_what_is_wrong(folder: Path, damage, message: str) -> None:
    write_card(folder)
    damage(folder)
    with pytest.raises(DatasetFolderError, match=message):
        validate_folder(folder)


def _corrupt_a_data_page(folder: Path) -> None:
    """Overwrite the start of the prompt column's first data page; the footer stays intact."""
    path = folder / "data/story_retrieval-1k/test-00000.parquet"
    prompt = pq.ParquetFile(path).metadata.row_group(0).column(pq.read_schema(path).get_field_index("prompt"))
    start = prompt.data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + 60] = b"\xff" * 60
    path.write_bytes(bytes(data))


def _copy_in_a_chat_config(folder: Path) -> None:
    path = folder / "data/story_retrieval-1k/test-00000.parquet"
    pq.write_table(pq.read_table(path).set_column(
        ROW_COLUMNS.index("chat"), "chat", pa.array([True] * 3)), path)  # fmt: skip


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_corrupt_a_data_page, r"test-00000\.parquet is corrupt"),
        (_copy_in_a_chat_config, "has rows with chat True, but the folder's is False"),
        (
            lambda f: pq.write_table(
                pq.read_table(f / "data/story_retrieval-1k/test-00000.parquet"),
                f / "data/story_retrieval-1k/extra.parquet",
            ),
            "not in the manifest",
        ),
    ],
)
def test_a_failing_export_names_the_problem_and_leaves_the_card_alone(folder: Path, damage, message) -> None:
    """Data that only a full read finds broken, or rows another folder's settings made, are refused before
    the card is rewritten (a card counted from a stray shard stated wrong row counts)."""
    write_card(folder)
    before = (folder / "README.md").read_bytes()
    damage(folder)
    for check in (export, validate_folder):
        with pytest.raises(DatasetFolderError, match=message):
            check(folder)
    assert (folder / "README.md").read_bytes() == before


def test_the_card_explains_every_answer_kind(folder: Path) -> None:
    text = render_card(folder)
    row = next(line for line in text.splitlines() if line.startswith("| `answer_kind` |"))
    assert all(f"`{kind}`" in row for kind in get_args(AnswerKind))


def test_validation_catches_row_count_and_stale_card(folder: Path) -> None:
    write_card(folder)
    manifest = json.loads((folder / "longtasks.json").read_text())
    manifest["configs"]["story_retrieval-2k"]["num_samples"] = 6
    (folder / "longtasks.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetFolderError, match="promises 6 rows but its files hold 5"):
        validate_folder(folder)
    manifest["configs"]["story_retrieval-2k"]["num_samples"] = 5
    manifest["configs"]["story_extra-1k"] = dict(manifest["configs"]["story_retrieval-1k"])
    manifest["configs"]["story_extra-1k"]["shards"] = []
    manifest["configs"]["story_extra-1k"]["num_samples"] = 0
    (folder / "longtasks.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetFolderError, match="run `longtasks export DIR`"):
        validate_folder(folder)


def test_export_cli(folder: Path) -> None:
    import typer

    from longtasks.commands.hub import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["export", str(folder)])
    assert result.exit_code == 0, result.output
    assert "4 config(s), 20 rows" in result.output
    assert DatasetCard.load(folder / "README.md").data.to_dict()["configs"]
    bad = CliRunner().invoke(app, ["export", str(folder / "nope")])
    assert bad.exit_code == 2
    assert "has no longtasks.json" in bad.output


def test_chat_mode_is_described(folder: Path) -> None:
    manifest = json.loads((folder / "longtasks.json").read_text())
    manifest["chat"] = True
    (folder / "longtasks.json").write_text(json.dumps(manifest))
    text = render_card(folder)
    assert "Chat mode is on" in text and "add_generation_prompt=True" in text


def test_regenerate_command_and_python_in_card_reproduce_identical_rows(tmp_path: Path) -> None:
    """Generate with the real CLI, then run the command the card prints (and its Python twin) into
    fresh folders: every config must hold identical rows."""
    from longtasks.cli import app

    first = tmp_path / "first"
    argv = ["generate", "story_multihop", "story_filtering", "--lengths", "2k", "-n", "2"]
    argv += ["--knob", "story_multihop.hops=2", "--seed", "7", "--no-progress", "--out", str(first)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    written_by_generate = (first / "README.md").read_text()
    card = DatasetCard.load(export(first))
    assert card.content == written_by_generate  # generate and export write the same card
    command = re.search(r"```bash\n(longtasks generate .+?)\n```", card.text, re.S).group(1)
    words = shlex.split(command)
    assert words[:2] == ["longtasks", "generate"] and "story_multihop.hops=2" in words
    second = tmp_path / "second"
    words[words.index("--out") + 1] = str(second)
    rerun = CliRunner().invoke(app, [*words[1:], "--no-progress"])
    assert rerun.exit_code == 0, rerun.output

    code = re.search(r"```python\n(from longtasks.dataset_dir.+?)\n```", card.text, re.S).group(1)
    third = tmp_path / "third"
    exec(code.replace('"OUT_DIR",', f"{str(third)!r}, progress=False,"), {})

    names = list(load_manifest(first)["configs"])
    assert names == ["story_multihop-2k", "story_filtering-2k"]
    for name in names:
        rows = _rows(first, name)
        assert len(rows) == 2
        assert _rows(second, name) == rows
        assert _rows(third, name) == rows
        loaded = datasets.load_dataset(str(second), name, split="test", cache_dir=str(tmp_path / "cache"))
        assert loaded.to_list() == rows


def test_export_process_exits_cleanly(folder: Path) -> None:
    """Run the real CLI in a fresh interpreter: validation must not leave readers that abort at exit."""
    code = "from longtasks.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "export", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "4 config(s), 20 rows" in done.stdout


def test_committed_example_card_parses_and_matches_its_manifest() -> None:
    from longtasks.resources import data_cards_dir

    example = data_cards_dir() / "examples" / "longtasks-4k-16k"
    card = DatasetCard.load(example / "README.md")
    manifest = load_manifest(example)
    names = [c["config_name"] for c in card.data.to_dict()["configs"]]
    assert names == list(manifest["configs"]) and len(names) == 14
    assert manifest["command"] in card.text


def test_card_of_a_folder_with_nothing_finished(tmp_path: Path) -> None:
    out = tmp_path / "out"
    make_folder(out, tasks=("story_retrieval",), lengths=(1024,), incomplete=("story_retrieval-1k",))
    card = DatasetCard.load(write_card(out))
    assert not card.data.to_dict().get("configs")
    assert "No config of this folder is complete yet" in card.text
    with pytest.raises(DatasetFolderError, match="incomplete"):
        validate_folder(out)
