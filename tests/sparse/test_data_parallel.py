"""Data parallel `sparse-hf`: `accelerate launch` runs one whole model per process, lm-eval splits the documents
across the processes, and the results (per-sample generations, metrics and the achieved compression) must equal
a one-process run.

The end-to-end test launches `longtasks eval` in two CPU processes (gloo) on a tiny random Qwen2 with the
offline Qwen2.5 tokenizer and compares with the same evaluation run in this process. The unit tests pin the
pieces: lm-eval's padding of a process's request list is neither run again nor counted, and the compression
reports of the other processes are merged in."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lm_eval import simple_evaluate
from lm_eval.api.instance import Instance

from longtasks.lm_eval_tasks.manager import max_length_for, task_manager
from sparse_eval.compression import CompressionReport, CompressionShortfallWarning
from sparse_eval.lm_eval_model import SparseHFLM, split_padding

TASK = "story_multihop"
LENGTH = 1024
NUM_SAMPLES = 3  # odd: one process gets one document more, so lm-eval pads the other's request list
MAX_GEN = 48
METHOD_ARGS = "method=snapkv,compression=4,window=32,local=16"


def make_lm(model_dir: Path, **args) -> SparseHFLM:
    text = ",".join(
        f"{k}={v}" for k, v in {"pretrained": model_dir, "device": "cpu", "dtype": "float32", **args}.items()
    )
    return SparseHFLM.create_from_arg_string(text)


def instance(kind: str, arguments: tuple, doc_id: int, repeats: int = 1) -> Instance:
    return Instance(
        request_type=kind, doc={}, arguments=arguments, idx=0, metadata=("dp_test", doc_id, repeats)
    )


def padded(requests: list[Instance], copies: int) -> list[Instance]:
    """What lm-eval's evaluator hands a process whose share is `copies` documents short: its last request
    appended again, `repeats` times per copy."""
    last = requests[-1]
    return requests + [last] * (copies * last.repeats)


# --- unit tests ---------------------------------------------------------------------------------------------


def test_split_padding_finds_the_copies_lm_eval_appends():
    a, b, c = (instance("generate_until", ("x", {}), i, repeats=r) for i, r in enumerate((1, 1, 2)))
    real, where = split_padding(padded([a, b, c, c], copies=2))
    assert real == [a, b, c, c]
    assert where == [0, 1, 2, 3, 2, 3, 2, 3]
    assert split_padding([a, b]) == ([a, b], [0, 1])


def test_ranks_come_from_accelerate_when_hflm_counts_no_gpus(saved_tiny_qwen2):
    """HFLM takes rank and world size from accelerate only when it counts more than one GPU; on CPU processes
    (or several processes sharing a GPU) sparse-hf takes them from the accelerator itself."""
    lm = make_lm(saved_tiny_qwen2)
    assert (lm.rank, lm.world_size) == (0, 1)  # one process: nothing changes
    lm.accelerator = SimpleNamespace(num_processes=2, process_index=1)
    lm._use_accelerate_ranks()
    assert (lm.rank, lm.world_size) == (1, 2)


class OtherProcess:
    """Stands in for `torch.distributed`: the other process's gathered (report, prompt length) pairs."""

    def __init__(self, lm: SparseHFLM, reports: list[tuple[CompressionReport, int]]) -> None:
        self.lm, self.reports, self.calls = lm, reports, 0

    def __call__(self, pending: list[tuple[CompressionReport, int]]) -> list[tuple[CompressionReport, int]]:
        self.calls += 1
        assert self.lm._pending is None  # the share is done before anything is gathered
        return list(pending) + self.reports


def other_report(
    method: str, compression: float, phase: str, dense: float, sparse: float
) -> CompressionReport:
    report = CompressionReport(method=method, target_compression=compression)
    report.layer(0, phase).add(torch.full((4,), dense), torch.full((4,), sparse))
    return report


def test_padding_is_answered_without_running_and_reports_are_gathered(saved_tiny_qwen2, monkeypatch):
    gen = {"until": ["\n\n"], "max_gen_toks": 4, "do_sample": False, "temperature": 0.0}
    texts = ["river lamp copper garden " * n + "\nAnswer:" for n in (30, 12, 20)]
    requests = [instance("generate_until", (text, gen), i) for i, text in enumerate(texts)]

    alone = make_lm(saved_tiny_qwen2, method="quest", compression=2, page_size=8)
    expected = alone.generate_until(requests)

    lm = make_lm(saved_tiny_qwen2, method="quest", compression=2, page_size=8)
    lm._world_size = 2  # as `accelerate launch` with two processes sets it
    other = other_report("quest", 2, "decode", 100.0, 25.0)
    gather = OtherProcess(lm, [(other, 77)])
    monkeypatch.setattr(lm, "_gather_reports", gather)
    prompts_run = []
    original = lm._model_generate
    monkeypatch.setattr(
        lm,
        "_model_generate",
        lambda context, *a, **k: prompts_run.append(len(context)) or original(context, *a, **k),
    )
    answers = lm.generate_until(padded(requests, copies=2))

    assert answers == expected + [expected[-1]] * 2  # the copies get the original's answer ...
    assert sum(prompts_run) == len(requests)  # ... without being generated again
    assert gather.calls == 1
    # this process's reports count once each, plus the other process's
    assert lm.requests_by_length == {**alone.requests_by_length, 77: 1}
    for n, report in alone.reports_by_length.items():
        assert lm.reports_by_length[n].to_dict() == report.to_dict()
    assert lm.reports_by_length[77].achieved_compression("decode") == pytest.approx(4.0)
    summary = lm.compression_summary()
    assert summary["requests_by_length"]["77"] == 1
    assert sum(summary["requests_by_length"].values()) == len(requests) + 1


def test_rolling_loglikelihood_skips_hflm_window_padding(saved_tiny_qwen2, monkeypatch):
    """HFLM pads rolling windows to equal counts across processes (an all_gather, then copies of a window);
    sparse-hf's processes hold whole models, so it runs each window once and counts it once."""
    texts = ["orbit ticket meadow candle " * n for n in (60, 25)]
    requests = [instance("loglikelihood_rolling", (text,), i) for i, text in enumerate(texts)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompressionShortfallWarning)
        alone = make_lm(saved_tiny_qwen2, method="block_sparse", compression=2)
        expected = alone.loglikelihood_rolling(requests)

        lm = make_lm(saved_tiny_qwen2, method="block_sparse", compression=2)
        lm._world_size = 2
        monkeypatch.setattr(lm, "_gather_reports", OtherProcess(lm, []))
        monkeypatch.setattr(lm, "all_gather", lambda tensor: pytest.fail("HFLM padded the rolling windows"))
        scores = lm.loglikelihood_rolling(padded(requests, copies=1))
    assert scores == pytest.approx([*expected, expected[-1]])
    assert lm.world_size == 2
    assert lm.report.to_dict() == alone.report.to_dict()
    assert lm.requests_by_length == alone.requests_by_length


# --- two processes end to end -------------------------------------------------------------------------------


LONGTASKS = next(
    (str(p) for p in (Path(sys.executable).parent / "longtasks",) if p.is_file()), shutil.which("longtasks")
)
"""The `longtasks` command of this interpreter's environment (else the one on PATH)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_run(out_dir: Path) -> tuple[dict, dict[int, dict]]:
    (results_file,) = glob.glob(str(out_dir / "*" / "results_*.json"))  # written once, by rank 0
    (samples_file,) = glob.glob(str(out_dir / "*" / f"samples_{TASK}_*.jsonl"))
    with open(samples_file, encoding="utf-8") as handle:
        samples = [json.loads(line) for line in handle]
    with open(results_file, encoding="utf-8") as handle:
        return json.load(handle), {s["doc_id"]: s for s in samples}


def comparable(sample: dict) -> dict:
    """What a run decides about a document. `resps` is left out: lm-eval appends the padding copies' answers to
    the padded document's own list (its filters take the first), so it is longer there by design."""
    keys = ("doc_hash", "prompt_hash", "target_hash", "filtered_resps", "score", "parsed", str(LENGTH))
    return {key: sample[key] for key in keys} | {"first_resp": sample["resps"][0][0]}


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None, reason="needs accelerate (installed with lm-eval[hf])"
)
@pytest.mark.skipif(LONGTASKS is None, reason="needs the longtasks command (pip install -e .)")
def test_two_processes_give_the_one_process_results(saved_tiny_qwen2, tmp_path):
    """`accelerate launch` with two CPU processes (gloo) runs `longtasks eval` with sparse-hf: each process
    generates the same documents and evaluates its share; the gathered per-sample generations, metrics and
    achieved compression (requests counted once each, from both processes) equal a one-process run."""
    model_dir = str(saved_tiny_qwen2)
    out_dir = tmp_path / "out"
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "1",  # accelerate's multi-process launcher, CPU processes with gloo
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    command = [
        *(
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
        ),
        *("--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())),
        *("--no_python", str(LONGTASKS), "eval", "--lengths", str(LENGTH), "--num-samples", str(NUM_SAMPLES)),
        *("--no-progress", "--model", "sparse-hf", "--model_args", f"pretrained={model_dir},{METHOD_ARGS}"),
        *("--tasks", TASK, "--gen_kwargs", f"max_gen_toks={MAX_GEN}", "--batch_size", "2"),
        *("--log_samples", "--output_path", str(out_dir)),
    ]
    started = time.monotonic()
    launched = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # the one-process reference runs here meanwhile: same documents, same model and method
    manager = task_manager(
        [LENGTH], tokenizer=model_dir, num_samples=NUM_SAMPLES, seed=0, include_defaults=False, progress=False
    )
    max_length = max_length_for([LENGTH], [TASK], tokenizer=model_dir, max_gen_toks=MAX_GEN)
    lm = make_lm(
        saved_tiny_qwen2, max_length=max_length, **dict(arg.split("=") for arg in METHOD_ARGS.split(","))
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the two launched processes take one thread each (torchrun's OMP_NUM_THREADS=1)
    try:
        reference = simple_evaluate(
            model=lm,
            tasks=[TASK],
            task_manager=manager,
            gen_kwargs=f"max_gen_toks={MAX_GEN}",
            log_samples=True,
        )
    finally:
        torch.set_num_threads(threads)
    try:
        log, _ = launched.communicate(timeout=300)
    finally:
        launched.kill()
    assert launched.returncode == 0, log[-4000:]
    print(f"two-process longtasks eval: {time.monotonic() - started:.0f} s")
    assert "rank 1" in log  # the second process built its share of the requests

    results, samples = read_run(out_dir)
    expected = {s["doc_id"]: s for s in reference["samples"][TASK]}
    assert sorted(samples) == sorted(expected) == list(range(NUM_SAMPLES))
    for doc_id, sample in expected.items():
        assert comparable(samples[doc_id]) == comparable(sample), doc_id
    metrics = {k: v for k, v in results["results"][TASK].items() if "," in k}
    assert metrics == pytest.approx({k: v for k, v in reference["results"][TASK].items() if "," in k})

    summary, expected_summary = (
        results["config"]["sparse_compression"],
        reference["config"]["sparse_compression"],
    )
    assert (
        summary["requests_by_length"] == {str(LENGTH): NUM_SAMPLES} == expected_summary["requests_by_length"]
    )
    assert summary["achieved"] == pytest.approx(expected_summary["achieved"])
    assert summary["achieved_by_length"] == pytest.approx(expected_summary["achieved_by_length"])
