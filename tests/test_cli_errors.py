"""User mistakes on the command line are one line on stderr, exit code 2, no traceback, nothing half-written;
and whatever the user typed or the data holds is printed as written, never read as rich markup."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from longtasks.cli import app
from longtasks.sample import Sample, row_schema
from longtasks.scoring import format_answer
from longtasks.scoring.metrics import decode_gold

runner = CliRunner()


def sweep_args(out: Path) -> list[str]:
    """A one-cell `longtasks sweep` command line writing into `out`."""
    return ["sweep", "--models", "m", "--lengths", "1k", "--tasks", "ruler_niah", "--out", str(out)]


EXAMPLE_TABLE = Path(__file__).parents[1] / "examples" / "analysis" / "tiny_sweep" / "results.parquet"


def one_error_line(result, *, after_progress: bool = False) -> str:
    """The single output line of a failed command (exit 2, `error: ...`, no traceback). `after_progress`: the
    failure came mid-run, so what the run printed before it may precede the error line."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    assert after_progress or len(lines) == 1, result.output
    return errors[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, Path]:
    """A generated folder with a list-answer task (ruler_niah) and a set-answer task (ruler_vt), and gold
    predictions for it."""
    out = tmp_path_factory.mktemp("errors") / "data"
    args = [
        "generate",
        "ruler_vt",
        "ruler_niah",
        "--lengths",
        "1k",
        "-n",
        "2",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert runner.invoke(app, args).exit_code == 0
    rows = [row for shard in sorted(out.rglob("*.parquet")) for row in pq.read_table(shard).to_pylist()]
    predictions = out.parent / "gold.jsonl"
    lines = [
        json.dumps(
            {
                "id": r["id"],
                "prediction": format_answer(r["answer_kind"], decode_gold(r["answer_kind"], r["answer"])),
            }
        )
        for r in rows
    ]
    predictions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out, predictions


@pytest.fixture
def unwritable(monkeypatch):
    """Make the given folders read-only in the eyes of os.access (chmod does not stop root, who runs CI)."""
    folders: set[Path] = set()
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path).absolute() in folders and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    return lambda path: folders.add(Path(path).absolute())


# ---- 1. output locations that cannot be written: checked before any work, failures at write time are one line


def _commands_writing_to(target: Path, folder: Path, predictions: Path) -> dict[str, list[str]]:
    return {
        "score --out": ["score", str(predictions), "--data", str(folder), "--out", str(target)],
        "generate --out": ["generate", "ruler_vt", "--lengths", "1k", "-n", "1", "--no-progress", "--out", str(target)],
        "analyze --out": ["analyze", str(EXAMPLE_TABLE), "--no-plots", "--out", str(target)],
        "sweep --out": ["sweep", "--models", "m", "--lengths", "1k", "--tasks", "ruler_niah", "--out", str(target)],
        "reference --save": ["reference", "--save", str(target)],
    }  # fmt: skip


@pytest.fixture
def no_model_loading(monkeypatch):
    """The reference command must fail before it loads a model (a minute on a CPU)."""
    from longtasks import reference

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(reference, "missing_requirements", lambda base_package=True: [])
    monkeypatch.setattr(reference, "load_reference", refuse)


@pytest.mark.parametrize(
    "command", ["score --out", "generate --out", "analyze --out", "sweep --out", "reference --save"]
)
def test_an_output_under_a_file_fails_up_front(folder, tmp_path, no_model_loading, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    args = _commands_writing_to(blocker / "sub" / "x.json", *folder)[command]
    line = one_error_line(runner.invoke(app, args))
    assert f"{blocker} is a file, not a folder" in line
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("command", ["analyze --out", "sweep --out", "generate --out"])
def test_an_output_folder_that_is_a_file_fails_up_front(folder, tmp_path, command):
    target = tmp_path / "a_file"
    target.write_text("x")
    line = one_error_line(runner.invoke(app, _commands_writing_to(target, *folder)[command]))
    assert f"{command.split()[1]} {target} is a file, not a folder" in line
    assert target.read_text() == "x"


@pytest.mark.parametrize("command", ["analyze --out", "sweep --out", "generate --out"])
def test_an_output_folder_that_is_a_dangling_link_fails_up_front(folder, tmp_path, command):
    """mkdir fails on a link to nothing, and a rerun would fail the same way: refused before any work."""
    target = tmp_path / "dangling"
    target.symlink_to(tmp_path / "nowhere")
    line = one_error_line(runner.invoke(app, _commands_writing_to(target, *folder)[command]))
    assert f"{command.split()[1]} {target} is a link to nothing" in line
    assert target.is_symlink() and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    "command", ["score --out", "generate --out", "analyze --out", "sweep --out", "reference --save"]
)
def test_an_output_in_an_unwritable_folder_fails_up_front(
    folder, tmp_path, unwritable, no_model_loading, command
):
    locked = tmp_path / "locked"
    locked.mkdir()
    unwritable(locked)
    args = _commands_writing_to(locked / "out", *folder)[command]
    line = one_error_line(runner.invoke(app, args))
    assert f"the folder {locked} is not writable" in line
    assert list(locked.iterdir()) == []


def test_a_folder_that_refuses_new_files_is_unwritable_even_for_root(tmp_path, monkeypatch):
    """os.access says yes to root on /sys and read-only mounts: a real probe decides."""
    import tempfile

    from longtasks.paths import check_output_file, check_output_folder

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(ValueError, match="is not writable"):
        check_output_file(tmp_path / "r.json")
    with pytest.raises(ValueError, match="is not writable"):
        check_output_folder(tmp_path / "new" / "deeper")


def test_score_write_failure_is_one_line_and_prints_no_table(folder, tmp_path, monkeypatch):
    from longtasks.commands import score as score_command

    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(score_command, "write_text_atomically", full_disk)
    out = tmp_path / "r.json"
    data, predictions = folder
    line = one_error_line(
        runner.invoke(app, ["score", str(predictions), "--data", str(data), "--out", str(out)])
    )
    assert f"--out {out}: could not write the report (No space left on device)" in line
    assert not out.exists()


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from longtasks import paths

    def fail_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(paths.os, "replace", fail_replace)
    with pytest.raises(OSError):
        paths.write_text_atomically(tmp_path / "r.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_generate_write_failure_is_one_line(tmp_path, monkeypatch):
    import longtasks.dataset_dir

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(longtasks.dataset_dir, "generate_to_dir", full_disk)
    args = [
        "generate",
        "ruler_vt",
        "--lengths",
        "1k",
        "-n",
        "1",
        "--no-progress",
        "--out",
        str(tmp_path / "d"),
    ]
    line = one_error_line(runner.invoke(app, args))
    assert (
        "generate stopped: [Errno 28] No space left on device" in line
        and "run the same command again" in line
    )


def test_analyze_and_sweep_write_failures_are_one_line(tmp_path, monkeypatch):
    import longtasks.analysis.report
    import longtasks.analysis.sweep

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x"))

    monkeypatch.setattr(longtasks.analysis.report, "analyze", denied)
    monkeypatch.setattr(longtasks.analysis.sweep, "run_sweep", denied)
    analyze = ["analyze", str(EXAMPLE_TABLE), "--no-plots", "--out", str(tmp_path / "a")]
    assert "Permission denied" in one_error_line(runner.invoke(app, analyze))
    sweep = sweep_args(tmp_path / "s")
    line = one_error_line(runner.invoke(app, sweep), after_progress=True)
    assert "sweep stopped: [Errno 13] Permission denied" in line


def _fake_model(monkeypatch):
    from longtasks import reference

    model = SimpleNamespace(parameters=lambda: [])
    monkeypatch.setattr(reference, "missing_requirements", lambda base_package=True: [])
    monkeypatch.setattr(reference, "load_reference", lambda *args, **kwargs: (model, object()))
    return reference


def test_reference_save_failure_leaves_no_half_written_folder(tmp_path, monkeypatch):
    reference = _fake_model(monkeypatch)

    def half_then_full(model, tokenizer, out):
        Path(out).mkdir(parents=True)
        (Path(out) / "model.safetensors").write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reference, "save_hf_folder", half_then_full)
    save = tmp_path / "ref"
    line = one_error_line(runner.invoke(app, ["reference", "--save", str(save)]), after_progress=True)
    assert f"--save {save}: could not write the model" in line
    assert list(tmp_path.iterdir()) == []


def test_reference_save_moves_the_finished_folder_into_place(tmp_path, monkeypatch):
    reference = _fake_model(monkeypatch)

    def write(model, tokenizer, out):
        Path(out).mkdir(parents=True)
        (Path(out) / "config.json").write_text("{}")

    monkeypatch.setattr(reference, "save_hf_folder", write)
    save = tmp_path / "empty"
    save.mkdir()  # an empty folder is accepted, as before
    result = runner.invoke(app, ["reference", "--save", str(save)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["empty"] and (save / "config.json").is_file()


# ---- 2. user text is printed as written, never as rich markup


@pytest.mark.parametrize("name", ["[", "rep[v2].json", "[bold]x.json"])
def test_score_prints_the_out_path_as_written(folder, tmp_path, name):
    data, predictions = folder
    out = tmp_path / name / "[" / "x[/b].json" if name == "[" else tmp_path / name
    out.parent.mkdir(parents=True, exist_ok=True)
    result = runner.invoke(app, ["score", str(predictions), "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"report written to {out}" in result.output
    assert json.loads(out.read_text())["n"] == 4


def test_generate_prints_the_out_path_as_written(tmp_path):
    out = tmp_path / "[bold]z"
    args = ["generate", "ruler_vt", "--lengths", "1k", "-n", "1", "--no-progress", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"to {out}: ruler_vt-1k" in " ".join(result.output.split())


def _markup_sample(**changes) -> Sample:
    values = dict(
        id="story_inventory-1024-s0-0", task="story_inventory", family="story", length=1024, input_tokens=1024,
        prompt="Which [bold]items[/bold]?", question="q", answer=["[red] lamp", "blue [box] cup"], answer_kind="set",
        tokenizer="qwen2.5", tokenizer_revision="t", chat=False, seed=0, index=0,
        knobs={"source": "a/[/old]/b"}, evidence_depths=[0.5], generator_version="t", meta={"note": "[i]x"},
    )  # fmt: skip
    return Sample(**{**values, **changes})


def _write_rows(path: Path, samples: list[Sample]) -> Path:
    pq.write_table(pa.Table.from_pylist([s.to_row() for s in samples], schema=row_schema()), path)
    return path


def test_show_prints_answers_knobs_and_meta_as_written(tmp_path):
    path = _write_rows(tmp_path / "rows.parquet", [_markup_sample()])
    result = runner.invoke(app, ["show", str(path)])
    assert result.exit_code == 0, result.output
    for text in ('"[red] lamp"', '"blue [box] cup"', '"a/[/old]/b"', '"[i]x"', "Which [bold]items[/bold]?"):
        assert text in result.output


def test_score_table_prints_task_names_as_written():
    from rich.console import Console

    from longtasks.scoring import score

    sample = _markup_sample(task="[red]odd")
    report = score([{"id": sample.id, "prediction": "<answer>x</answer>"}], [sample.to_row()])
    console = Console(record=True, width=200)
    console.print(report.to_table("task"))
    assert "[red]odd" in console.export_text()


def test_list_prints_a_default_from_the_environment_as_written(tmp_path, monkeypatch):
    """The QA source default comes from LONGTASKS_QA_SOURCE_*: a path with "[/o]" once crashed `list`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "[").mkdir()
    (tmp_path / "[" / "o]").symlink_to(os.environ["LONGTASKS_QA_SOURCE_SQUAD"])
    monkeypatch.setenv("LONGTASKS_QA_SOURCE_SQUAD", "[/o]")
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert "source=[/o]" in result.output


def test_list_shows_a_default_from_the_environment_that_does_not_work(monkeypatch):
    """`list` describes the tasks; a QA source variable pointing nowhere is shown, not a traceback."""
    monkeypatch.setenv("LONGTASKS_QA_SOURCE_SQUAD", "/nonexistent/squad")
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert "defaults unusable here" in result.output and "/nonexistent/squad" in result.output


def test_analyze_notes_and_sweep_labels_are_printed_as_written(tmp_path, monkeypatch):
    import longtasks.analysis.report
    import longtasks.analysis.sweep
    from longtasks.analysis.sweep import Cell
    from longtasks.analysis.sweep.runner import SweepResult

    def analyze(frame, out, options):
        return SimpleNamespace(notes=["crossover: model [/x] has one size"], tables=[], plots=[])

    def run_sweep(spec, out, *, keep_going, on_cell, phases):
        cell = Cell("org/[bold]m", "dense", 1.0, 1024)
        on_cell(cell, "start")
        on_cell(cell, "fail")
        return SweepResult(failed={cell.label(): "boom"})

    monkeypatch.setattr(longtasks.analysis.report, "analyze", analyze)
    monkeypatch.setattr(longtasks.analysis.sweep, "run_sweep", run_sweep)
    result = runner.invoke(app, ["analyze", str(EXAMPLE_TABLE), "--no-plots", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "crossover: model [/x] has one size" in result.output
    sweep = [
        "sweep",
        "--models",
        "org/[bold]m",
        "--lengths",
        "1k",
        "--tasks",
        "ruler_niah",
        "--out",
        str(tmp_path / "s"),
    ]
    result = runner.invoke(app, sweep)
    assert result.exit_code == 1 and "failed: [bold]m dense 1x @ 1024" in result.output, result.output


# ---- 3. eval --data-path that is neither a generated folder nor a reachable Hub dataset


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("/nonexistent/longtasks-data", "does not exist"),
        ("someone/not-cached-here", "could not be read from the Hub"),
    ],
)
def test_static_tasks_name_a_bad_data_path(source, what):
    """`longtasks eval` turns this ValueError into its one error line (eval.py catches ValueError around the run;
    the CLI itself is not run here: importing lm-eval takes longer than a test may)."""
    from longtasks.lm_eval_tasks.static import available_lengths

    with pytest.raises(ValueError, match="--data-path") as caught:
        available_lengths(source, "ruler_niah")
    message = str(caught.value)
    assert what in message and "longtasks generate --out DIR" in message and "Hub dataset id" in message


def test_static_tasks_name_a_data_path_that_is_a_file(tmp_path):
    from longtasks.lm_eval_tasks.static import available_lengths

    file = tmp_path / "data.jsonl"
    file.write_text("{}\n")
    with pytest.raises(ValueError, match=r"--data-path '.*data.jsonl' is a file, not a folder"):
        available_lengths(str(file), "ruler_niah")


# ---- 5. show on a parquet file that is not a longtasks dataset; --config with a file


def test_show_refuses_a_parquet_file_of_other_data():
    line = one_error_line(runner.invoke(app, ["show", str(EXAMPLE_TABLE)]))
    assert (
        f"{EXAMPLE_TABLE} is not a longtasks dataset file: it lacks the column(s) id, prompt, answer" in line
    )


def test_show_refuses_a_file_that_is_not_parquet(tmp_path):
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    assert f"{fake} is not a parquet file" in one_error_line(runner.invoke(app, ["show", str(fake)]))


def test_show_checks_config_against_a_file(tmp_path):
    path = _write_rows(tmp_path / "rows.parquet", [_markup_sample()])
    line = one_error_line(runner.invoke(app, ["show", str(path), "--config", "ruler_vt-1k"]))
    assert "--config 'ruler_vt-1k' does not match" in line and "which holds story_inventory-1k" in line
    result = runner.invoke(app, ["show", str(path), "--config", "story_inventory-1k"])
    assert result.exit_code == 0 and "story_inventory-1024-s0-0" in result.output


# ---- 6. reference --gguf with a file that is not a GGUF


def test_reference_with_a_bad_gguf_fails_in_one_line(tmp_path, monkeypatch):
    from longtasks import reference

    def not_gguf(adapter, base, dtype):
        raise ValueError(f"{base} does not start with the GGUF magic bytes, so it is not a GGUF file.")

    monkeypatch.setattr(reference, "missing_requirements", lambda base_package=True: [])
    monkeypatch.setattr(reference, "load_reference", not_gguf)
    bad = tmp_path / "model.gguf"
    bad.write_text("{}")
    line = one_error_line(runner.invoke(app, ["reference", "--gguf", str(bad)]))
    assert f"could not load the reference model from base {bad}" in line and "is not a GGUF file" in line


# ---- 8. a damaged longtasks.json is named in every command that reads it


@pytest.mark.parametrize(
    ("text", "what"), [("{not json", "is not valid JSON"), ("[]", "is not a longtasks manifest")]
)
def test_a_damaged_manifest_is_named(folder, tmp_path, text, what):
    _, predictions = folder
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "longtasks.json").write_text(text)
    manifest = broken / "longtasks.json"
    generate = ["generate", "ruler_vt", "--lengths", "1k", "-n", "1", "--no-progress", "--out", str(broken)]
    for args in (["show", str(broken)], ["score", str(predictions), "--data", str(broken)], generate):
        assert f"{manifest} {what}" in one_error_line(runner.invoke(app, args))
    assert manifest.read_text() == text


@pytest.mark.parametrize("manifest", [[], {"configs": []}, {"configs": {"a-1k": 3}}, {"tokenizer": "x"}])
def test_read_manifest_checks_the_shape(tmp_path, manifest):
    from longtasks.dataset_dir import read_manifest

    (tmp_path / "longtasks.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"longtasks.json is not a longtasks manifest"):
        read_manifest(tmp_path)


def test_read_manifest_of_a_folder_without_one_is_empty(tmp_path):
    from longtasks.dataset_dir import read_manifest

    assert read_manifest(tmp_path) == {}


# ---- 10. sweep: non-finite compressions, and --phase parsed as analyze parses it


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_sweep_spec_refuses_non_finite_compressions(value):
    from longtasks.analysis.sweep import SweepSpec

    with pytest.raises(ValueError, match=r"compressions must be >= 1 and finite"):
        SweepSpec(models=("m",), methods=("quest",), compressions=(2.0, value), lengths=(1024,))


@pytest.mark.parametrize("phase", ["foo", "=prefill", "foo="])
def test_sweep_and_analyze_refuse_the_same_bad_phase(tmp_path, phase):
    sweep = sweep_args(tmp_path / "s")
    analyze = ["analyze", str(EXAMPLE_TABLE), "--no-plots", "--out", str(tmp_path / "a")]
    for args in (sweep, analyze):
        line = one_error_line(runner.invoke(app, [*args, "--phase", phase]))
        assert f"--phase takes METHOD=prefill|decode (e.g. my_method=prefill), got {phase!r}" in line
    assert list(tmp_path.iterdir()) == []


def test_sweep_passes_phases_through(tmp_path, monkeypatch):
    import longtasks.analysis.sweep
    from longtasks.analysis.sweep.runner import SweepResult

    seen = {}

    def run_sweep(spec, out, *, keep_going, on_cell, phases):
        seen.update(phases)
        return SweepResult()

    monkeypatch.setattr(longtasks.analysis.sweep, "run_sweep", run_sweep)
    args = [
        "sweep",
        "--models",
        "m",
        "--lengths",
        "1k",
        "--out",
        str(tmp_path / "s"),
        "--phase",
        "mine = decode",
    ]
    assert runner.invoke(app, args).exit_code == 0
    assert seen == {"mine": "decode"}


# ---- 11. score: a folder as predictions, empty paths


def test_score_says_the_predictions_path_is_a_folder(folder):
    data, _ = folder
    line = one_error_line(runner.invoke(app, ["score", str(data), "--data", str(data)]))
    assert f"predictions file {str(data)!r} is a folder; give the JSONL file" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["", "--data", "DATA"], "the predictions argument is empty"),
        (["PRED", "--data", ""], "--data is empty"),
        (["PRED", "--data", "DATA", "--out", ""], "--out is empty"),
    ],
)
def test_score_refuses_empty_paths(folder, args, message):
    data, predictions = folder
    args = [{"DATA": str(data), "PRED": str(predictions)}.get(arg, arg) for arg in args]
    assert message in one_error_line(runner.invoke(app, ["score", *args]))


# ---- 12. score --by question_depth on data without per-question depths


def test_question_depth_view_without_list_tasks_is_an_error(folder):
    data, predictions = folder
    vt = data / "data" / "ruler_vt-1k"
    vt_only = predictions.parent / "vt.jsonl"
    vt_only.write_text(
        "".join(line + "\n" for line in predictions.read_text().splitlines() if "ruler_vt" in line)
    )
    predictions = vt_only
    line = one_error_line(
        runner.invoke(app, ["score", str(predictions), "--data", str(vt), "--by", "question_depth"])
    )
    assert "the scored task(s) ruler_vt have no per-question depths" in line
    assert "story_retrieval, ruler_niah" in line and "--by depth" in line


def test_question_depth_view_notes_the_tasks_it_leaves_out(folder):
    data, predictions = folder
    result = runner.invoke(app, ["score", str(predictions), "--data", str(data), "--by", "question_depth"])
    assert result.exit_code == 0, result.output
    assert "ruler_niah" in result.output
    assert "note: ruler_vt not shown: only list-answer tasks" in " ".join(result.output.split())
