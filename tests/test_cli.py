"""The CLI end to end: generate (resumable, atomic, validated), show, score."""

from __future__ import annotations

import json
import os
import re
import shlex

import datasets
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from longtasks.cli import app
from longtasks.scoring import format_answer

runner = CliRunner()


def generate(out, *extra):
    args = [
        "generate",
        "story_filtering",
        "story_multihop",
        "--lengths",
        "2k,3000",
        "-n",
        "5",
        "--out",
        str(out),
    ]
    return runner.invoke(app, [*args, "--no-progress", *extra])


def shards(out):
    return sorted(p.relative_to(out).as_posix() for p in (out / "data").rglob("*.parquet"))


def test_list_shows_every_task_and_defaults():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for name in (
        "story_retrieval",
        "story_multihop",
        "story_filtering",
        "story_inventory",
        "num_questions=16",
    ):
        assert name in result.output


def test_generate_writes_loadable_configs(tmp_path):
    out = tmp_path / "data"
    result = generate(out, "--knob", "story_multihop.hops=2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "longtasks.json").read_text())
    assert set(manifest["configs"]) == {
        "story_filtering-2k",
        "story_filtering-3000",
        "story_multihop-2k",
        "story_multihop-3000",
    }
    assert all(c["complete"] for c in manifest["configs"].values())
    assert "--knob story_multihop.hops=2" in manifest["command"]
    rows = datasets.load_dataset(
        str(out), "story_multihop-3000", split="test", cache_dir=str(tmp_path / "cache")
    )
    assert rows.num_rows == 5
    assert set(rows["input_tokens"]) == {3000}
    assert {json.loads(k)["hops"] for k in rows["knobs"]} == {2}
    assert rows["index"] == list(range(5))


def test_the_recorded_command_names_a_source_taken_from_the_environment(tmp_path):
    """A QA source set by LONGTASKS_QA_SOURCE_* (the tests set them) is written into the recorded command: run
    as recorded, in a shell without the variable, it must read the same data."""
    out = tmp_path / "qa"
    result = runner.invoke(
        app, ["generate", "qa_squad", "--lengths", "1k", "-n", "1", "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    source = os.environ["LONGTASKS_QA_SOURCE_SQUAD"]
    command = json.loads((out / "longtasks.json").read_text())["command"]
    assert shlex.split(command)[-4:] == ["--knob", f"qa_squad.source={source}", "--out", str(out)]


def test_interrupted_run_resumes_without_redoing_finished_shards(tmp_path):
    out = tmp_path / "data"
    assert generate(out).exit_code == 0
    files = shards(out)
    before = {f: (out / f).read_bytes() for f in files}
    kept = out / files[0]
    kept_mtime = kept.stat().st_mtime_ns
    (out / files[1]).unlink()  # a shard that never got written
    (out / "data" / "story_multihop-2k" / "test-000005-000010.parquet.partial").write_bytes(b"half")
    assert generate(out).exit_code == 0
    assert shards(out) == files
    assert kept.stat().st_mtime_ns == kept_mtime  # not redone
    assert {f: (out / f).read_bytes() for f in files} == before  # the recreated shard is identical
    assert not list(out.rglob("*.partial"))


def test_changed_settings_need_overwrite(tmp_path):
    out = tmp_path / "data"
    assert generate(out).exit_code == 0
    result = generate(out, "--seed", "7")
    assert result.exit_code == 2 and "other settings" in result.output
    assert generate(out, "--seed", "7", "--overwrite").exit_code == 0
    assert json.loads((out / "longtasks.json").read_text())["seed"] == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["story_filtering", "--lengths", "4q"], "invalid length '4q'"),
        (["story_filtering", "--lengths", "200"], "too small"),
        (["story_nope", "--lengths", "4k"], "unknown task 'story_nope'"),
        (["story_filtering", "--knob", "hops=2"], "no selected task has a knob named 'hops'"),
        (["story_filtering", "--knob", "story_filtering.num_empty=x"], "not a valid int"),
        (["story_filtering", "--knob", "num_empty"], "use NAME=VALUE"),
        (["story_filtering", "-n", "0"], "'-n': 0 is below 1"),
        (["story_filtering", "-n", "abc"], "'-n': 'abc' is not a whole number"),
        (["story_filtering", "--workers", "0"], "'--workers': 0 is below 1"),
        (["ruler_cwe", "--lengths", "1M"], "raise rare_word_frequency"),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "never"
    result = runner.invoke(app, ["generate", *args, "--out", str(out), "--no-progress"])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "data"
    assert (
        runner.invoke(
            app, ["generate", "ruler_vt", "--lengths", "1k", "-n", "2", "--no-progress", "--out", str(out)]
        ).exit_code
        == 0
    )
    predictions = out.parent / "predictions.jsonl"
    predictions.write_text('{"id": "ruler_vt-1024-s0-0", "prediction": ""}\n', encoding="utf-8")
    return out, predictions


BAD_PATHS = {
    "generate into a file": lambda f, p, t: ["generate", "ruler_vt", "--lengths", "1k", "-n", "1", "--out", str(p)],
    "score --out a folder": lambda f, p, t: ["score", str(p), "--data", str(f), "--out", str(t)],
    "score --out in a missing folder": lambda f, p, t: ["score", str(p), "--data", str(f), "--out", str(t / "no" / "r.json")],
    "score a missing predictions file": lambda f, p, t: ["score", str(t / "none.jsonl"), "--data", str(f)],
    "score against a missing folder": lambda f, p, t: ["score", str(p), "--data", str(t / "none")],
    "show a missing folder": lambda f, p, t: ["show", str(t / "none")],
    "export a missing folder": lambda f, p, t: ["export", str(t / "none")],
    "push a missing folder": lambda f, p, t: ["push", str(t / "none"), "--repo-id", "me/x", "--dry-run"],
    "export a file": lambda f, p, t: ["export", str(p)],
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_PATHS))
def test_every_command_reports_a_bad_path_in_one_line(small_folder, tmp_path, case):
    """A user's path mistake is one line on stderr and exit code 2 — before any work, never a traceback."""
    folder, predictions = small_folder
    result = runner.invoke(
        app,
        [*BAD_PATHS[case](folder, predictions, tmp_path), "--no-progress"]
        if case.startswith("generate")
        else BAD_PATHS[case](folder, predictions, tmp_path),
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert not (tmp_path / "report.json").exists()


def test_a_smaller_rerun_keeps_rows_unless_overwrite(tmp_path):
    out = tmp_path / "data"
    assert generate(out).exit_code == 0
    smaller = generate(out, "-n", "3")
    assert smaller.exit_code == 2 and "would delete 8 row(s)" in " ".join(smaller.output.split())
    assert len(pq.read_table(out / "data" / "story_filtering-2k").to_pylist()) == 5
    assert generate(out, "-n", "3", "--overwrite").exit_code == 0
    assert len(pq.read_table(out / "data" / "story_filtering-2k").to_pylist()) == 3


def test_show_prints_a_sample(tmp_path):
    out = tmp_path / "data"
    assert generate(out).exit_code == 0
    result = runner.invoke(app, ["show", str(out), "--config", "story_filtering-2k", "--index", "1"])
    assert result.exit_code == 0
    assert "story_filtering-2048-s0-1" in result.output and "<story>" in result.output
    bad = runner.invoke(app, ["show", str(out), "--config", "nope"])
    assert bad.exit_code == 2 and "available" in bad.output


def test_score_gold_predictions_score_one(tmp_path):
    out = tmp_path / "data"
    assert generate(out).exit_code == 0
    rows = [r for f in sorted((out / "data").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    preds = tmp_path / "pred.jsonl"
    with preds.open("w") as f:
        for r in rows:
            f.write(
                json.dumps(
                    {
                        "id": r["id"],
                        "prediction": "Thinking... "
                        + format_answer(r["answer_kind"], json.loads(r["answer"])),
                    }
                )
                + "\n"
            )
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["score", str(preds), "--data", str(out), "--out", str(report)])
    assert result.exit_code == 0, result.output
    summary = json.loads(report.read_text())["summary"]
    assert summary["overall"]["score"]["mean"] == 1.0
    empty = tmp_path / "empty.jsonl"
    empty.write_text("".join(json.dumps({"id": r["id"], "prediction": ""}) + "\n" for r in rows))
    result = runner.invoke(app, ["score", str(empty), "--data", str(out), "--out", str(report)])
    assert json.loads(report.read_text())["summary"]["overall"]["score"]["mean"] == 0.0


def _config_files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in (out / "data").rglob("*.parquet")}


def test_rejected_overwrite_leaves_the_folder_untouched(tmp_path):
    out = tmp_path / "data"
    assert generate(out).exit_code == 0
    before = _config_files(out)
    manifest_before = (out / "longtasks.json").read_text()
    result = generate(out, "--knob", "story_multihop.hops=400", "--overwrite")
    assert result.exit_code == 2 and re.search("too small|too few", " ".join(result.output.split()))
    assert _config_files(out) == before
    assert (out / "longtasks.json").read_text() == manifest_before


def test_overwrite_replaces_only_the_named_configs(tmp_path):
    out = tmp_path / "data"
    assert generate(out).exit_code == 0
    filtering = {k: v for k, v in _config_files(out).items() if "story_filtering" in k}
    args = ["generate", "story_multihop", "--lengths", "2k", "-n", "5", "--seed", "9", "--overwrite"]
    assert runner.invoke(app, [*args, "--out", str(out), "--no-progress"]).exit_code == 0
    manifest = json.loads((out / "longtasks.json").read_text())
    assert set(manifest["configs"]) >= {"story_filtering-2k", "story_filtering-3000", "story_multihop-2k"}
    assert manifest["configs"]["story_multihop-2k"]["seed"] == 9
    assert manifest["configs"]["story_filtering-2k"]["seed"] == 0
    assert {k: v for k, v in _config_files(out).items() if "story_filtering" in k} == filtering
    assert (
        datasets.load_dataset(
            str(out), "story_filtering-2k", split="test", cache_dir=str(tmp_path / "cache")
        ).num_rows
        == 5
    )
    assert len(manifest["commands"]) == 2  # the card lists both runs
    assert all(c in (out / "README.md").read_text() for c in manifest["commands"])


def test_one_folder_one_tokenizer_and_chat_mode(tmp_path):
    out = tmp_path / "data"
    assert generate(out).exit_code == 0
    result = generate(out, "--chat")
    assert result.exit_code == 2 and "chat mode off" in " ".join(result.output.split())
    assert generate(out, "--chat", "--overwrite").exit_code == 0
    manifest = json.loads((out / "longtasks.json").read_text())
    assert manifest["chat"] is True
    rows = datasets.load_dataset(
        str(out), "story_filtering-2k", split="test", cache_dir=str(tmp_path / "cache")
    )
    assert set(rows["chat"]) == {True}


def test_sigterm_stops_workers_and_keeps_finished_shards(tmp_path):
    """A scheduler's SIGTERM unwinds like Ctrl-C: exit code 130, no orphaned worker, no partial file."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "data"
    command = [sys.executable, "-m", "longtasks.cli", "generate", "story_retrieval", "--lengths", "256k",
               "-n", "400", "--workers", "2", "--no-progress", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not list((out / "data").rglob("*.parquet")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 130, output
    assert "run the same command again to resume" in " ".join(output.split())
    assert "Traceback" not in output
    # Nothing of the run's process group may be left. Workers are terminated before exit; multiprocessing's
    # resource tracker leaves on its own once the parent is gone, which can take a moment under load.
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("processes of the interrupted run are still alive 60 s after it exited")
    assert not list(out.rglob("*.partial"))
    assert (
        json.loads((out / "longtasks.json").read_text())["configs"]["story_retrieval-256k"]["complete"]
        is False
    )
