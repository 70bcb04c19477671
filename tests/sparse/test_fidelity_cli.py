"""benchmarks/bench_fidelity.py's command line: every bad option is refused before any work (it used to
surface after minutes, losing them), the JSON is rewritten after each length so a crash keeps the finished
ones, it never holds a bare NaN, and the model phase reports each (method, compression) as it finishes.
main() runs in-process with the work stubbed out (or on a tiny random model), so each test takes seconds."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import pytest
import torch

from sparse_eval.fidelity import prompts as prompts_module
from sparse_eval.fidelity.prompts import Prompt

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_fidelity", ROOT / "benchmarks" / "bench_fidelity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_story_prompts(tokenizer, length: int, num: int, seed: int = 0, questions: int = 4) -> list[Prompt]:
    """story_prompts' contract on random ids (the tiny models' vocabulary), too short below 80 tokens."""
    if length < 80:
        raise ValueError(f"length {length} is too small: the shortest length that works is 80")
    g = torch.Generator().manual_seed(seed)
    return [
        Prompt(
            torch.randint(0, 101, (1, length), generator=g), torch.randint(0, 101, (1, 4), generator=g), ["a"]
        )
        for _ in range(num)
    ]


@pytest.fixture
def no_work(bench, monkeypatch, build_tiny_lm) -> list[int]:
    """Every piece of work raises; a tiny model and fake story prompts stand in for SmolLM2's loading.
    Returns the lengths story prompts were built for."""

    def work(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    for name in ("structured_qkv", "attention_fidelity", "dense_prefill", "model_fidelity"):
        monkeypatch.setattr(bench, name, work)
    monkeypatch.setattr(
        bench, "load_model", lambda parser, args: (build_tiny_lm("llama"), None), raising=False
    )
    built: list[int] = []

    def story_prompts(tokenizer, length, num, seed=0, questions=4):
        built.append(length)
        return fake_story_prompts(tokenizer, length, num, seed, questions)

    monkeypatch.setattr(prompts_module, "story_prompts", story_prompts)
    return built


def usage_error(bench: ModuleType, capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert ": error: " in lines[-1]
    return lines[-1]


SYN = ["--synthetic", "--lengths", "64", "--methods", "quest", "--compressions", "1", "2"]
MODEL = ["--model", "smollm2", "--lengths", "96", "--methods", "quest", "--compressions", "2"]


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        # methods are built at every compression, not only at c = 1
        (["--synthetic", "--lengths", "64", "--compressions", "1", "0.5"], "got 0.5"),
        (
            ["--synthetic", "--lengths", "64", "--methods", "dense", "--compressions", "1", "2"],
            "must be 1, got 2",
        ),
        ([*MODEL, "--model-methods", "nope"], "unknown sparse method 'nope'"),
        ([*MODEL, "--model-compressions", "0.5"], "got 0.5"),
        ([*MODEL, "--layer-stride", "0"], "--layer-stride: '0'"),
        # synthetic arguments that gave NaN rows, internal errors, mislabelled or no rows with exit 0
        ([*SYN, "--lengths", "0"], "length '0'"),
        ([*SYN, "--lengths", "-64"], "length '-64'"),
        ([*SYN, "--lengths", "4"], "--lengths 4: synthetic prompts need at least 8 tokens"),
        ([*SYN, "--decode-rows", "0"], "--decode-rows: '0'"),
        ([*SYN, "--decode-rows", "-5"], "--decode-rows: '-5'"),
        ([*SYN, "--seeds", "0"], "--seeds: '0'"),
        ([*MODEL, "--samples", "0"], "--samples: '0'"),
    ],
)
def test_bad_options_are_refused_before_any_work(bench, no_work, capsys, argv, names):
    assert names in usage_error(bench, capsys, argv)


@pytest.mark.parametrize("below", ["", "sub"])
def test_an_out_path_through_a_file_is_refused_before_any_work(bench, no_work, capsys, tmp_path, below):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    message = usage_error(bench, capsys, [*SYN, "--out", str(blocker / below)])
    assert "is a file" in message and "afile" in message


def test_every_story_length_is_built_before_any_model_work(bench, no_work, capsys, tmp_path):
    message = usage_error(bench, capsys, [*MODEL[:2], "--lengths", "96", "60", "--out", str(tmp_path)])
    assert "--lengths 60: length 60 is too small" in message and "80" in message
    assert no_work == [96, 60] and not list(tmp_path.iterdir())


def test_json_is_rewritten_after_each_length_and_a_crash_keeps_the_finished_ones(
    bench, monkeypatch, tmp_path
):
    real = bench.attention_fidelity

    def crash_at_128(tallies, cases, *args, **kwargs):
        cases = list(cases)
        if cases[0].prompt_len == 128:
            raise RuntimeError("simulated crash")
        return real(tallies, cases, *args, **kwargs)

    monkeypatch.setattr(bench, "attention_fidelity", crash_at_128)
    argv = [*SYN, "--lengths", "64", "128", "--decode-rows", "4", "--out", str(tmp_path)]
    with pytest.raises(RuntimeError, match="simulated crash"):
        bench.main(argv)
    saved = json.loads((tmp_path / "fidelity_synthetic.json").read_text())
    assert saved["lengths_done"] == [64] and saved["settings"]["lengths"] == [64, 128]
    assert {(r["length"], r["method"], r["compression"]) for r in saved["rows"]} == {
        (64, "quest", 1.0),
        (64, "quest", 2.0),
    }
    assert [p.name for p in tmp_path.iterdir()] == ["fidelity_synthetic.json"]  # no partial file left


def test_json_holds_null_where_a_value_is_not_a_number(bench, tmp_path):
    path = tmp_path / "rows.json"
    bench.write_json(
        path, {"rows": [{"achieved": math.nan, "kl": math.inf, "error": 0.5}], "c": (1.0, -math.inf)}
    )

    def refuse(constant: str) -> None:
        raise AssertionError(f"invalid JSON constant {constant}")

    saved = json.loads(path.read_text(), parse_constant=refuse)
    assert saved == {"rows": [{"achieved": None, "kl": None, "error": 0.5}], "c": [1.0, None]}


def test_model_phase_logs_each_method_and_compression(bench, monkeypatch, build_tiny_lm, capsys, tmp_path):
    monkeypatch.setattr(
        bench, "load_model", lambda parser, args: (build_tiny_lm("llama"), None), raising=False
    )
    monkeypatch.setattr(prompts_module, "story_prompts", fake_story_prompts)
    argv = [
        *MODEL,
        "--model-methods",
        "snapkv",
        "quest",
        "--model-compressions",
        "2",
        "3",
        "--layer-stride",
        "1",
    ]
    assert bench.main([*argv, "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    for n, (label, c) in enumerate([("snapkv", 2), ("snapkv", 3), ("quest", 2), ("quest", 3)], 1):
        assert f"L=96: model {n}/4: {label} c={c}: KL " in err
    assert "L=96: oracle 4/4: oracle_snapkv:sink=0,local=0,pool_kernel=1 c=3: KL " in err
    assert "L=96: attention layer 2/2 scored (1 selections)" in err
    rows = json.loads((tmp_path / "fidelity_smollm2.json").read_text())["rows"]
    assert {r["method"] for r in rows if "kl" in r} >= {"snapkv", "quest", "oracle_snapkv"}
