"""A story task through real lm-eval with the `sparse-hf` model under every method, offline: a tiny
random Qwen2 with the project's Qwen2.5 tokenizer reads exact-length story prompts, and the run reports
per-length metrics and the compression each method achieved."""

from __future__ import annotations

import pytest
from lm_eval import simple_evaluate

from longtasks.lm_eval_tasks.manager import task_manager
from sparse_eval import list_methods
from sparse_eval.lm_eval_model import SparseHFLM

LENGTH = 1024
TASK = "story_multihop"
# Seed defaults budget 512-token minimums and estimation windows; at 1k tokens that covers everything,
# so small-scale settings make the methods actually drop work.
SMALL = {"flexprefill": ",min_budget=64,block_size=64,last_q_size=128"}
PHASE = {
    "vertical_slash": "prefill",
    "block_sparse": "prefill",
    "flexprefill": "prefill",
    "quest": "decode",
    "snapkv": "kv",
    "ada_snapkv": "kv",
}


@pytest.fixture(scope="module")
def model_dir(saved_tiny_qwen2):
    return saved_tiny_qwen2


@pytest.fixture(scope="module")
def manager(model_dir):
    return task_manager([LENGTH], tokenizer=str(model_dir), num_samples=2, seed=0, include_defaults=False)


def test_every_method_is_covered():
    assert set(list_methods()) == {"dense", *PHASE}


@pytest.mark.parametrize("method", ["dense", *PHASE])
def test_story_task_end_to_end_under_each_method(model_dir, manager, method):
    compression = 1 if method == "dense" else 4
    lm = SparseHFLM.create_from_arg_string(
        f"pretrained={model_dir},device=cpu,dtype=float32,max_length={LENGTH + 64},method={method},compression={compression}{SMALL.get(method, '')}"
    )
    results = simple_evaluate(
        model=lm, tasks=[TASK], task_manager=manager, gen_kwargs="max_gen_toks=48", log_samples=True
    )
    metrics = results["results"][TASK]
    assert metrics[f"{LENGTH},none"] == pytest.approx(metrics["score,none"])  # per-length column
    samples = results["samples"][TASK]
    assert len(samples) == 2
    assert all(s["doc"]["input_tokens"] == LENGTH for s in samples)
    if method == "dense":
        assert lm.report.achieved_compression("decode") == pytest.approx(1.0)
        return
    achieved = lm.report.achieved_compression(PHASE[method])
    assert achieved > 1.5, f"{method} dropped nothing: {lm.report.summary()}"
