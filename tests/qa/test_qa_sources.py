"""QA sources: every local form reads the same content through `datasets`; a Hub dataset is read from the
local cache at its pinned commit (and generation works offline once it is cached); a missing or wrong
source is one clear error before anything is written; the card names source, revision and licence; data
whose licence is unstated is not pushed without an explicit flag."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard
from qa_helpers import PINNED_SQUAD, QUALITY_FILE, SQUAD_FILE, TOEFL_FILE, read_jsonl
from typer.testing import CliRunner

from longtasks.cli import app
from longtasks.families.qa import fetch
from longtasks.families.qa import task as qa_task
from longtasks.generation import generate_samples
from longtasks.hub import push
from longtasks.scoring import format_answer

runner = CliRunner()


def hub_cache(root: Path, repo_and_revision: str, split: str, files: list[Path]) -> None:
    """Put `files` into a `datasets` cache at `root` the way `load_dataset(repo, revision=...)` stores a Hub
    dataset: <owner>___<name>/<config>/<version>/<commit>/ (built with `datasets`' own json builder)."""
    from datasets.naming import camelcase_to_snakecase
    from datasets.packaged_modules.json.json import Json

    repo, _, revision = repo_and_revision.partition("@")
    owner, name = repo.split("/")
    staging = root.parent / f"staging-{name}"
    builder = Json(
        cache_dir=str(staging), dataset_name=name, config_name="default", hash=revision,
        data_files={split: [str(f) for f in files]},
    )  # fmt: skip
    builder.download_and_prepare()
    snake = camelcase_to_snakecase(name)
    shutil.move(str(staging / snake), str(root / f"{owner}___{snake}"))


@pytest.fixture
def squad_cached(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "hf-datasets"
    root.mkdir()
    hub_cache(root, PINNED_SQUAD, "validation", [SQUAD_FILE])
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", root)
    monkeypatch.delenv("LONGTASKS_QA_SOURCE_SQUAD")
    return root


def rows_of(task: str, source: str, tokenizer) -> list[dict]:
    samples = generate_samples(task, 3000, 3, seed=4, tokenizer=tokenizer, knobs={"source": source})
    return [s.to_row() for s in samples]


def test_every_local_form_reads_the_same_content(tmp_path, tokenizer):
    table = datasets.load_dataset("json", data_files=str(SQUAD_FILE), split="train")
    table.to_parquet(tmp_path / "squad.parquet")
    table.save_to_disk(str(tmp_path / "saved"))
    forms = [
        str(SQUAD_FILE.parent),
        str(SQUAD_FILE),
        str(tmp_path / "squad.parquet"),
        str(tmp_path / "saved"),
    ]
    results = [rows_of("qa_squad", form, tokenizer) for form in forms]
    for rows in results:
        assert [r["prompt"] for r in rows] == [r["prompt"] for r in results[0]]
        assert [r["meta"].split('"source"')[0] for r in rows] == [
            r["meta"].split('"source"')[0] for r in results[0]
        ]
    assert len({r["meta"].split('"source_sha256": ')[1][:18] for rows in results for r in rows}) == 1


def test_the_pinned_quality_copy_is_read_from_the_cache(tmp_path, monkeypatch, tokenizer):
    from longtasks.families.qa.quality import HUB_SOURCE

    hub_cache(tmp_path, HUB_SOURCE, "validation", [QUALITY_FILE])
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    monkeypatch.delenv("LONGTASKS_QA_SOURCE_QUALITY")
    (sample,) = generate_samples("qa_quality", 4096, 1, tokenizer=tokenizer)
    assert (sample.meta["source"], sample.meta["source_revision"]) == tuple(HUB_SOURCE.split("@"))


def test_a_cached_hub_dataset_is_read_at_its_commit(squad_cached, tokenizer):
    (sample,) = generate_samples("qa_squad", 4096, 1, tokenizer=tokenizer)
    assert sample.knobs["source"] == PINNED_SQUAD
    assert sample.meta["source"] == "rajpurkar/squad_v2"
    assert sample.meta["source_revision"] == PINNED_SQUAD.split("@")[1]
    other = (
        PINNED_SQUAD.split("@")[0] + "@" + "0" * 40
    )  # another commit is not silently replaced by the cached one
    with pytest.raises(ValueError, match="is not in the local datasets cache"):
        generate_samples("qa_squad", 4096, 1, tokenizer=tokenizer, knobs={"source": other})


def test_generate_works_offline_from_the_cache_and_the_card_names_the_source(squad_cached, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["generate", "qa_squad", "--lengths", "4k,32k", "-n", "2", "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    rows = pq.read_table(next((out / "data" / "qa_squad-32k").glob("*.parquet"))).to_pylist()
    assert len(rows) == 2 and all(r["input_tokens"] == 32768 for r in rows)
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == ["mit", "cc-by-sa-4.0"]
    assert "extended|rajpurkar/squad_v2" in card.data.source_datasets
    assert "## Source data" in card.text and "`rajpurkar/squad_v2`" in card.text
    assert PINNED_SQUAD.split("@")[1] in card.text and "cc-by-sa-4.0" in card.text
    assert "SQuAD 2.0" in card.text  # the family and task paragraphs


def test_a_missing_dataset_is_one_line_exit_2_and_nothing_written(tmp_path, monkeypatch):
    monkeypatch.setattr(qa_task, "_POOLS", {})  # as in a fresh process
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "empty-cache")
    monkeypatch.delenv("LONGTASKS_QA_SOURCE_SQUAD")
    monkeypatch.delenv("LONGTASKS_QA_SOURCE_TOEFL")
    for task, message in [
        ("qa_squad", "python -m longtasks.families.qa.fetch qa_squad"),
        ("qa_toefl", "qa_toefl needs the TOEFL-QA file (no Hub copy exists)"),
    ]:
        out = tmp_path / task
        result = runner.invoke(app, ["generate", task, "--lengths", "4k", "--out", str(out), "--no-progress"])
        assert result.exit_code == 2 and message in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not out.exists()


@pytest.mark.parametrize(
    ("task", "source", "message"),
    [
        ("qa_squad", "rajpurkar/squad_v2", "has no pinned revision"),
        ("qa_squad", "rajpurkar/squad_v2@main", "has no pinned revision"),
        ("qa_squad", "./no/such/file.jsonl", "is not an existing file or folder"),
        ("qa_toefl", "data/toeflqa.jsonl", "is not an existing file or folder"),
        ("qa_toefl", str(SQUAD_FILE), r"lacks column\(s\) \['questions', 'answer'\]"),
        ("qa_quality", str(TOEFL_FILE), "needs the tasksource/QuALITY"),
    ],
)
def test_a_wrong_source_is_a_clear_error(tokenizer, task, source, message):
    with pytest.raises(ValueError, match=message):
        generate_samples(task, 4096, 1, tokenizer=tokenizer, knobs={"source": source})


def test_fetch_explains_itself_without_network(monkeypatch, capsys):
    assert fetch.main(["qa_toefl"]) == 0 and "no Hub copy" in capsys.readouterr().out
    assert fetch.main(["story_retrieval"]) == 2 and "is not a QA task" in capsys.readouterr().err
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    assert fetch.main(["qa_quality"]) == 2
    assert "could not download tasksource/QuALITY" in capsys.readouterr().err


def test_an_empty_source_file_says_so(tokenizer, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"cannot read source '.*empty\.jsonl': the file is empty$"):
        generate_samples(
            "qa_squad", 4096, 1, tokenizer=tokenizer, knobs={"source": str(tmp_path / "empty.jsonl")}
        )


def test_a_source_path_with_pattern_characters_is_read_as_a_path(tokenizer, tmp_path):
    """datasets reads [ ] * ? in a path as a pattern: a file there is read as named, a folder is refused."""
    folder = tmp_path / "v[old]"
    folder.mkdir()
    shutil.copy(TOEFL_FILE, folder / "toeflqa.jsonl")
    (sample,) = generate_samples(
        "qa_toefl", 8192, 1, tokenizer=tokenizer, knobs={"source": str(folder / "toeflqa.jsonl")}
    )
    assert sample.input_tokens == 8192
    with pytest.raises(ValueError, match=r"has one of \[ \] \* \? in its path.*give one of its data files"):
        generate_samples("qa_toefl", 8192, 1, tokenizer=tokenizer, knobs={"source": str(folder)})


def test_unlicensed_source_text_is_not_pushed_without_the_flag(tmp_path):
    from longtasks.dataset_dir import generate_to_dir

    out = tmp_path / "toefl"
    generate_to_dir(out, ["qa_toefl", "qa_quality"], [2048], num_samples=2, progress=False)
    card = DatasetCard.load(out / "README.md")
    assert set(card.data.license) == {"mit", "cc-by-4.0", "unknown"}
    assert "unstated upstream" in card.text
    with pytest.raises(ValueError, match="qa_toefl, whose source text has no clear licence"):
        push(out, "someone/toefl", dry_run=True)
    assert push(out, "someone/toefl", dry_run=True, allow_unlicensed=True).rows == 4
    result = runner.invoke(app, ["push", str(out), "--repo-id", "someone/toefl", "--dry-run"])
    assert result.exit_code == 2 and "--allow-unlicensed-data" in result.output
    allowed = ["push", str(out), "--repo-id", "someone/toefl", "--dry-run", "--allow-unlicensed-data"]
    assert runner.invoke(app, allowed).exit_code == 0


def test_list_names_the_toefl_licence_caveat():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    assert "unstated" in " ".join(result.output.replace("│", " ").split())


def test_generate_show_score_and_export(tmp_path):
    out = tmp_path / "qa"
    args = [
        "generate",
        *("qa_squad", "qa_quality", "qa_toefl"),
        "--lengths",
        "2k",
        "-n",
        "2",
        "--out",
        str(out),
    ]
    assert runner.invoke(app, [*args, "--no-progress"]).exit_code == 0
    shown = runner.invoke(app, ["show", str(out), "--config", "qa_toefl-2k"])
    assert (
        shown.exit_code == 0 and "Question about document" in shown.output and "source_sha256" in shown.output
    )
    predictions = tmp_path / "predictions.jsonl"
    lines = []
    for path in sorted((out / "data").rglob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            answer = format_answer(row["answer_kind"], json.loads(row["answer"]))
            lines.append(json.dumps({"id": row["id"], "prediction": f"Because.\n{answer}"}))
    predictions.write_text("\n".join(lines) + "\n")
    scored = runner.invoke(
        app, ["score", str(predictions), "--data", str(out), "--out", str(tmp_path / "r.json")]
    )
    assert scored.exit_code == 0, scored.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n"] == 6 and all(s["score"] == 1.0 for s in report["per_sample"])
    assert runner.invoke(app, ["export", str(out)]).exit_code == 0


def test_a_quality_copy_with_zero_based_labels_is_refused(tmp_path, tokenizer):
    rows = read_jsonl(QUALITY_FILE)
    for row in rows:
        row["gold_label"] -= 1
    shifted = tmp_path / "quality.jsonl"
    shifted.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="gold_label 0; QuALITY's labels count from 1"):
        generate_samples("qa_quality", 4096, 1, tokenizer=tokenizer, knobs={"source": str(shifted)})
