"""The `sparse-hf` lm-eval model: a generate_until task written here (YAML + JSONL in tmp_path) runs end to
end, offline, on a tiny random Qwen2 with the project's Qwen2.5 tokenizer, under each method; generations
equal the library's own greedy loop; model arguments are parsed and validated."""

from __future__ import annotations

import json
import random
import warnings

import pytest
import torch
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

from sparse_eval.compression import CompressionShortfallWarning
from sparse_eval.generation import generate
from sparse_eval.lm_eval_model import SparseHFLM, sparse_args

TASK = "sparse_hf_smoke"
BATCH_TASK = "sparse_hf_batch"
MAX_GEN = 6


@pytest.fixture(scope="module")
def model_dir(saved_tiny_qwen2):
    return saved_tiny_qwen2


@pytest.fixture(scope="module")
def task_manager(task_dir):
    """Indexing lm-eval's built-in tasks takes seconds: do it once."""
    return TaskManager(include_path=str(task_dir[0]))


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    """A generate_until task over two ~300-token prompts of random words."""
    root = tmp_path_factory.mktemp("tasks")
    rng = random.Random(0)
    words = ["river", "lamp", "copper", "garden", "violet", "harbor", "candle", "meadow", "ticket", "orbit"]
    docs = [
        {"prompt": " ".join(rng.choice(words) for _ in range(300)) + "\nAnswer:", "answer": rng.choice(words)}
        for _ in range(2)
    ]
    (root / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    batch_docs = [  # prompts of different lengths, so batches are left-padded
        {"prompt": " ".join(rng.choice(words) for _ in range(n)) + "\nAnswer:", "answer": rng.choice(words)}
        for n in (20, 150, 60, 110, 35)
    ]
    (root / "batch_docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in batch_docs))
    (root / f"{TASK}.yaml").write_text(
        f"""task: {TASK}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / "docs.jsonl"}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n\\n"]
  max_gen_toks: {MAX_GEN}
  do_sample: false
  temperature: 0.0
metric_list:
  - metric: exact_match
"""
    )
    task = (
        (root / f"{TASK}.yaml")
        .read_text()
        .replace(TASK, BATCH_TASK)
        .replace("docs.jsonl", "batch_docs.jsonl")
    )
    (root / f"{BATCH_TASK}.yaml").write_text(task)
    return root, docs


def make_lm(model_dir, **args) -> SparseHFLM:
    text = ",".join(
        f"{k}={v}" for k, v in {"pretrained": model_dir, "device": "cpu", "dtype": "float32", **args}.items()
    )
    return SparseHFLM.create_from_arg_string(text)


@pytest.mark.parametrize(
    ("method", "args", "phase"),
    [
        ("dense", {}, None),
        ("quest", {"compression": 4, "page_size": 8}, "decode"),
        ("snapkv", {"compression": 4, "window": 32, "local": 16}, "kv"),
        ("ada_snapkv", {"compression": 4, "window": 32, "local": 16, "floor": 0.2}, "kv"),
    ],
)
def test_generate_until_task_runs_under_each_method(model_dir, task_dir, task_manager, method, args, phase):
    _, docs = task_dir
    lm = make_lm(model_dir, method=method, **args)
    assert lm.sparse_method.name == method
    results = simple_evaluate(model=lm, tasks=[TASK], task_manager=task_manager, log_samples=True)
    assert TASK in results["results"]
    samples = results["samples"][TASK]
    assert len(samples) == len(docs)
    tokenizer = lm.tokenizer
    for sample in samples:
        prompt = tokenizer(sample["doc"]["prompt"], return_tensors="pt").input_ids
        direct = generate(
            lm.model,
            prompt,
            lm.sparse_method,
            max_new_tokens=MAX_GEN,
            eos_token_id=lm._eos_ids(),
            stop=["\n\n"],
            tokenizer=tokenizer,
        )
        expected = tokenizer.decode(direct.tokens, skip_special_tokens=True).split("\n\n")[0]
        assert sample["resps"][0][0] == expected
    # the report accumulated over both requests: the target for fixed budgets, nothing dropped for dense
    if phase == "kv":
        assert lm.report.achieved_compression("kv") == pytest.approx(4.0, rel=0.02)
    elif phase == "decode":
        assert lm.report.achieved_compression("decode") == pytest.approx(4.0, rel=0.10)
    else:
        assert lm.report.phases() == ["prefill", "decode"]
        assert lm.report.achieved_compression("decode") == pytest.approx(1.0)
    # requested and achieved compression travel with lm-eval's results, per prompt length too
    summary = results["config"]["sparse_compression"]
    assert summary["requested"] == (args.get("compression", 1))
    lengths = {len(tokenizer(d["prompt"]).input_ids) for d in docs}
    assert set(summary["achieved_by_length"]) == {str(n) for n in lengths}
    if phase:
        assert summary["achieved"] == pytest.approx(lm.report.achieved_compression(phase))


def test_shortfall_is_reported_once_with_the_achieved_compression(model_dir, task_manager):
    """At ~300 tokens the forced tiles of block_sparse cannot reach 20x: the run warns once (not once per
    request) and the results show the achieved value next to the requested one."""
    lm = make_lm(model_dir, method="block_sparse", compression=20)
    with pytest.warns(CompressionShortfallWarning) as caught:
        results = simple_evaluate(model=lm, tasks=[TASK], task_manager=task_manager)
    shortfalls = [w for w in caught if issubclass(w.category, CompressionShortfallWarning)]
    assert len(shortfalls) == 1
    assert "requested" in str(shortfalls[0].message)
    summary = results["config"]["sparse_compression"]
    assert summary["requested"] == 20
    assert summary["phase"] == "prefill"
    assert 1.5 < summary["achieved"] < 0.8 * 20


def test_model_args_configure_the_method(model_dir):
    lm = make_lm(
        model_dir,
        method="ada_snapkv",
        compression="2.5",
        window="64",
        floor="0.3",
        sparse_backend="reference",
    )
    method = lm.sparse_method
    assert (method.compression, method.window, method.floor, method.backend) == (2.5, 64, 0.3, "reference")
    assert lm.backend == "causal"  # HFLM's own `backend` is untouched
    # a field whose default is None takes its annotation's type: flexprefill's `gamma: float | None`
    assert sparse_args({"method": "flexprefill", "gamma": "0.9"}).gamma == 0.9
    assert sparse_args({"method": "flexprefill", "gamma": "None", "compression": "5"}).gamma is None


def test_bad_model_args_are_explained(model_dir):
    with pytest.raises(ValueError, match="unknown sparse method 'nope'"):
        make_lm(model_dir, method="nope")
    with pytest.raises(ValueError, match=r"needs a fixed batch_size, e.g. batch_size=8 \(got 'auto'\)"):
        make_lm(model_dir, method="snapkv", batch_size="auto")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        make_lm(model_dir, method="snapkv", batch_size=0)
    assert make_lm(model_dir, method="snapkv", batch_size=4).batch_size == 4
    with pytest.raises(ValueError, match="gamma='high' is not a valid float"):
        sparse_args({"method": "flexprefill", "gamma": "high"})
    with pytest.raises(ValueError, match="window='abc' is not a valid int"):
        SparseHFLM(str(model_dir), method="snapkv", window="abc", device="cpu")
    with pytest.raises(ValueError, match="compression"):
        make_lm(model_dir, method="snapkv", compression=0.5)
    with pytest.raises(ValueError, match=r"method=quest has no argument\(s\) window"):
        make_lm(model_dir, method="quest", window=64)  # HFLM would hand it to the model's constructor


def test_long_context_is_an_error_not_a_truncation(model_dir, task_manager):
    lm = make_lm(model_dir, method="snapkv", compression=2, max_length=64)
    with pytest.raises(ValueError, match="exceeds the 58 that fit"):
        simple_evaluate(model=lm, tasks=[TASK], task_manager=task_manager, limit=1)


def test_sampling_is_refused(model_dir):
    lm = make_lm(model_dir, method="quest", compression=2)
    with pytest.raises(ValueError, match="greedily"):
        lm._model_generate(torch.tensor([[1, 2, 3]]), max_length=8, stop=[], do_sample=True, temperature=0.7)


def test_loglikelihood_is_dense_for_kv_methods(model_dir):
    lm = make_lm(model_dir, method="snapkv", compression=4)
    inps = torch.randint(0, 1000, (1, 50))
    with torch.no_grad():
        torch.testing.assert_close(lm._model_call(inps), lm.model(inps).logits)
    assert lm.report.phases() == []


def test_loglikelihood_runs_prefill_methods_sparsely(model_dir):
    lm = make_lm(model_dir, method="block_sparse", compression=4)
    inps = torch.randint(0, 1000, (1, 600), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sparse, dense = lm._model_call(inps), lm.model(inps).logits
    assert not torch.allclose(sparse, dense, atol=1e-3)
    assert lm.report.phases() == ["prefill"]
    assert lm.report.achieved_compression("prefill") > 2


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("ada_snapkv", {"compression": 3, "window": 16, "sink": 2, "local": 4}),
        ("quest", {"compression": 4, "page_size": 8}),
        (
            "vertical_slash",
            {"compression": 3, "last_q_size": 16, "n_local": 8, "q_block_size": 16, "block_size": 16},
        ),
    ],
)
def test_batch_size_4_generates_what_batch_size_1_does(model_dir, task_manager, method, args):
    """Five prompts of 20-150 words: batch_size=4 (left-padded batches of 4 and 1) gives the same
    generations and the same achieved compression, overall and per prompt length, as batch_size=1."""
    runs = []
    for batch_size in (1, 4):
        lm = make_lm(model_dir, method=method, batch_size=batch_size, **args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CompressionShortfallWarning)
            results = simple_evaluate(
                model=lm, tasks=[BATCH_TASK], task_manager=task_manager, log_samples=True
            )
        samples = sorted(results["samples"][BATCH_TASK], key=lambda sample: sample["doc_id"])
        runs.append(
            ([sample["resps"] for sample in samples], results["config"]["sparse_compression"], lm.report)
        )
    (resps_1, summary_1, report_1), (resps_4, summary_4, report_4) = runs
    assert resps_4 == resps_1
    assert summary_4 == summary_1
    assert len(summary_1["achieved_by_length"]) == 5
    assert report_4.to_dict() == report_1.to_dict()


def test_batched_loglikelihood_of_a_prefill_method_equals_batch_1(model_dir):
    """Loglikelihood requests of different lengths, right-padded by HFLM into batches of 4: each row's
    prefill runs on its real tokens only, so scores and reports equal batch_size=1."""
    rng = random.Random(1)
    requests = [
        (("", ""), [rng.randrange(1000) for _ in range(n)], [rng.randrange(1000) for _ in range(3)])
        for n in (90, 40, 130, 65, 20)
    ]
    scored = []
    for batch_size in (1, 4):
        lm = make_lm(model_dir, method="block_sparse", compression=3, batch_size=batch_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CompressionShortfallWarning)
            scored.append((lm._loglikelihood_tokens(list(requests)), lm.report, lm.reports_by_length))
    (single, report_1, by_length_1), (batched, report_4, by_length_4) = scored
    for (logprob_1, greedy_1), (logprob_4, greedy_4) in zip(single, batched, strict=True):
        assert logprob_4 == pytest.approx(logprob_1, abs=1e-4)
        assert greedy_4 == greedy_1
    assert report_4.to_dict() == report_1.to_dict()
    assert {n: r.to_dict() for n, r in by_length_4.items()} == {
        n: r.to_dict() for n, r in by_length_1.items()
    }
    assert report_1.achieved_compression("prefill") > 1.2
