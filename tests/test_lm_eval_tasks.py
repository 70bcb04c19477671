"""The lm-eval task folder: registration, metadata parsing, dataset functions, scoring hooks, guards.

Offline and fast: lengths of 1-2k tokens, 2 samples, lm-eval's TaskManager without its built-in tasks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.tasks import TaskManager
from lm_eval.tasks._yaml_loader import load_yaml

from longtasks.generation import generate_samples
from longtasks.lm_eval_tasks import dataset, tasks_dir
from longtasks.lm_eval_tasks.budget import check_answer_budget
from longtasks.lm_eval_tasks.guard import (
    LengthGuardError,
    generation_budget,
    guard_model_args,
    requested_tasks,
)
from longtasks.lm_eval_tasks.launch import (
    EvalUsageError,
    TaskSettings,
    import_model_plugins,
    lengths_within_limit,
    parse_lm_eval_args,
    prepare_run,
)
from longtasks.lm_eval_tasks.manager import max_length_for, task_manager
from longtasks.lm_eval_tasks.metrics import doc_to_target, process_results
from longtasks.lm_eval_tasks.options import (
    generation_options,
    parse_lengths_value,
    static_options,
    task_knobs,
)
from longtasks.lm_eval_tasks.yaml_files import render_all, stale_files
from longtasks.registry import ALL_GROUP, gen_budget, groups, list_tasks, static_name
from longtasks.scoring import format_answer
from longtasks.tokenizer import load_tokenizer

TASKS = list_tasks()
STORY = list_tasks("story")
ALL_TASKS = [*TASKS, *(static_name(t) for t in TASKS)]
GROUP = "longtasks_story"
STATIC_GROUP = static_name(GROUP)


def make_manager(**metadata) -> TaskManager:
    return TaskManager(include_defaults=False, include_path=str(tasks_dir()), metadata=metadata)


# --- registration ------------------------------------------------------------------------------


def test_every_task_and_group_is_registered():
    manager = make_manager()
    assert sorted(manager.all_subtasks) == sorted(ALL_TASKS)
    expected_groups = ["longtasks_story", "longtasks_ruler", "longtasks_qa", ALL_GROUP]
    assert sorted(manager.all_groups) == sorted(
        [*expected_groups, *(static_name(g) for g in expected_groups)]
    )


def test_yaml_files_are_generated_from_the_registry():
    """The checked-in YAML files are exactly what the registry renders (regenerate with
    `python -m longtasks.lm_eval_tasks.yaml_files --write`)."""
    assert stale_files() == []
    assert len(render_all()) == len(ALL_TASKS) + len(groups()) + 1


def test_every_yaml_file_parses_and_registers_its_name():
    """lm-eval skips a YAML that fails to load without a word; every file must load and register."""
    registered = set(make_manager().all_tasks)
    files = sorted(tasks_dir().glob("*.yaml"))
    assert len(files) == len(ALL_TASKS) + len(groups())
    for path in files:
        config = load_yaml(path, resolve_func=True)
        name = config["group"] if "group" in config else config["task"]
        assert name == path.stem, f"{path.name} declares {name!r}"
        assert name in registered
        if "custom_dataset" in config:
            expected = dataset.static if name.endswith("_static") else dataset.generated
            assert config["custom_dataset"] is expected
            assert config["metadata"]["longtasks_task"] == name.removesuffix("_static")


def test_groups_list_their_families_tasks():
    assert load_yaml(tasks_dir() / f"{GROUP}.yaml")["task"] == STORY
    assert load_yaml(tasks_dir() / "longtasks_ruler.yaml")["task"] == ["ruler_niah", "ruler_vt", "ruler_cwe"]
    assert load_yaml(tasks_dir() / f"{ALL_GROUP}.yaml")["task"] == TASKS
    assert load_yaml(tasks_dir() / f"{STATIC_GROUP}.yaml")["task"] == [static_name(t) for t in STORY]


@pytest.mark.parametrize("task", ALL_TASKS)
def test_generation_settings(task):
    config = load_yaml(tasks_dir() / f"{task}.yaml", resolve_func=False)
    gen = config["generation_kwargs"]
    assert gen["do_sample"] is False
    assert gen["until"] == ["</answer>"]
    assert config["metadata"]["gen_budget"] == gen["max_gen_toks"] == gen_budget(task)
    assert config["num_fewshot"] == 0
    metrics = [m["metric"] for m in config["metric_list"]]
    assert metrics[:2] == ["score", "parsed"] and "4096" in metrics and "131072" in metrics


def test_retrieval_gets_a_larger_budget_than_single_answers():
    assert generation_budget(["story_retrieval"]) > generation_budget(["story_multihop"])
    assert generation_budget(["story_multihop"], {"max_gen_toks": 77}) == 77


# --- metadata parsing --------------------------------------------------------------------------


def test_lengths_parse_sort_and_dedupe():
    assert parse_lengths_value([8192, "4k", 4096]) == (4096, 8192)
    assert parse_lengths_value("8k,2k") == (2048, 8192)
    assert parse_lengths_value(1024) == (1024,)
    assert parse_lengths_value("[2048, 1024]") == (1024, 2048)
    for bad in ([], "x", True, {"a": 1}):
        with pytest.raises(ValueError):
            parse_lengths_value(bad)


def test_generation_options_defaults_and_tokenizer_priority():
    options = generation_options("story_multihop", {"max_seq_lengths": [1024], "pretrained": "p"}, TASKS)
    assert (options.num_samples, options.seed, options.chat, options.tokenizer) == (100, 0, False, "p")
    options = generation_options(
        "story_multihop",
        {"max_seq_lengths": "1k", "pretrained": "p", "tokenizer": "t", "chat": "true", "num_samples": "3"},
        TASKS,
    )
    assert (options.tokenizer, options.chat, options.num_samples) == ("t", True, 3)
    with pytest.raises(ValueError, match="max_seq_lengths"):
        generation_options("story_multihop", {}, TASKS)
    with pytest.raises(ValueError, match="num_samples"):
        generation_options("story_multihop", {"max_seq_lengths": [1024], "num_samples": 0}, TASKS)
    with pytest.raises(ValueError, match="chat"):
        generation_options("story_multihop", {"max_seq_lengths": [1024], "chat": "maybe"}, TASKS)


def test_knobs_flat_per_task_json_and_mixed():
    assert task_knobs("story_multihop", {"hops": 2}, TASKS) == {"hops": 2}
    per_task = {"story_multihop": {"hops": 2}, "story_retrieval": {"num_questions": 4}}
    assert task_knobs("story_multihop", per_task, TASKS) == {"hops": 2}
    assert task_knobs("story_filtering", per_task, TASKS) == {}
    assert task_knobs("story_multihop", json.dumps(per_task), TASKS) == {"hops": 2}
    with pytest.raises(ValueError, match="mixes"):
        task_knobs("story_multihop", {"story_multihop": {}, "hops": 2}, TASKS)
    with pytest.raises(ValueError, match="JSON"):
        task_knobs("story_multihop", "{hops", TASKS)


def test_static_options_need_a_source():
    with pytest.raises(ValueError, match="data_path"):
        static_options("story_multihop", {"max_seq_lengths": [1024]})
    options = static_options("story_multihop", {"dataset": "me/data"})
    assert (options.source, options.lengths, options.num_samples, options.chat) == (
        "me/data",
        None,
        None,
        None,
    )


# --- dataset functions -------------------------------------------------------------------------


def test_dataset_functions_need_the_task_named_in_metadata():
    assert dataset.task_from_metadata({"longtasks_task": "ruler_vt"}) == "ruler_vt"
    with pytest.raises(ValueError, match="longtasks_task"):
        dataset.generated(max_seq_lengths=[1024])


def test_generated_rows_equal_generate_samples_shortest_length_first():
    rows = dataset.generated_rows(
        "story_multihop", {"max_seq_lengths": [2048, 1024], "num_samples": 2, "seed": 5, "version": 1.0}
    )
    expected = [
        s.to_row()
        for length in (1024, 2048)
        for s in generate_samples("story_multihop", length, 2, seed=5, tokenizer=None)
    ]
    assert rows == expected
    assert [r["length"] for r in rows] == [1024, 1024, 2048, 2048]
    assert all(r["input_tokens"] == r["length"] for r in rows)


def test_task_manager_metadata_reaches_the_generator():
    """seed, num_samples and knobs given to lm-eval's TaskManager change the documents."""

    def docs(**metadata):
        task = make_manager(max_seq_lengths=[1024], **metadata).load(["story_retrieval"])["tasks"]
        return list(task["story_retrieval"].eval_docs)

    base = docs(num_samples=2, seed=0)
    assert len(base) == 2 and {d["seed"] for d in base} == {0}
    assert len(docs(num_samples=3, seed=0)) == 3
    reseeded = docs(num_samples=2, seed=7)
    assert {d["seed"] for d in reseeded} == {7} and reseeded[0]["prompt"] != base[0]["prompt"]
    knobbed = docs(num_samples=2, seed=0, knobs={"story_retrieval": {"num_questions": 4}})
    assert json.loads(knobbed[0]["knobs"])["num_questions"] == 4
    assert len(json.loads(knobbed[0]["answer"])) == 4 != len(json.loads(base[0]["answer"]))


def test_unknown_knob_is_a_clear_error():
    with pytest.raises(ValueError, match="num_questionz"):
        dataset.generated_rows("story_retrieval", {"max_seq_lengths": [1024], "knobs": {"num_questionz": 3}})


def test_answer_budget_check():
    rows = dataset.generated_rows("story_retrieval", {"max_seq_lengths": [1024], "num_samples": 1})
    check_answer_budget("story_retrieval", rows, load_tokenizer(), 512)
    with pytest.raises(ValueError, match="max_gen_toks="):
        check_answer_budget("story_retrieval", rows, load_tokenizer(), 40)
    with pytest.raises(ValueError, match="gen_budget"):
        dataset.generated_rows(
            "story_retrieval", {"max_seq_lengths": [1024], "num_samples": 1, "gen_budget": 40}
        )


# --- static variant ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from longtasks.dataset_dir import generate_to_dir

    out = tmp_path_factory.mktemp("export")
    generate_to_dir(
        out, ["story_multihop", "story_filtering"], [1024, 2048], num_samples=3, seed=2, progress=False
    )
    return out


def test_static_rows_match_the_export(exported):
    rows = list(
        dataset.static(longtasks_task="story_multihop", data_path=str(exported), num_samples=2)["test"]
    )
    expected = [
        s.to_row() for length in (1024, 2048) for s in generate_samples("story_multihop", length, 2, seed=2)
    ]
    assert rows == expected
    only = dataset.static(longtasks_task="story_filtering", data_path=str(exported), max_seq_lengths=[2048])[
        "test"
    ]
    assert only["length"] == [2048] * 3


def test_static_errors_are_clear(exported):
    with pytest.raises(ValueError, match="4k"):
        dataset.static(longtasks_task="story_multihop", data_path=str(exported), max_seq_lengths=[4096])
    with pytest.raises(ValueError, match="fewer than num_samples=5"):
        dataset.static(longtasks_task="story_multihop", data_path=str(exported), num_samples=5)
    with pytest.raises(ValueError, match="chat"):
        dataset.static(longtasks_task="story_multihop", data_path=str(exported), chat=True)
    with pytest.raises(ValueError, match="no config for this task"):
        dataset.static(longtasks_task="story_retrieval", data_path=str(exported))


# --- scoring hooks -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_by_task() -> dict[str, dict]:
    lengths = {"ruler_cwe": 3072}
    return {
        t: dataset.generated_rows(t, {"max_seq_lengths": [lengths.get(t, 1024)], "num_samples": 1})[0]
        for t in TASKS
    }


@pytest.mark.parametrize("task", TASKS)
def test_process_results_gold_empty_and_open_tag(task, docs_by_task):
    doc = docs_by_task[task]
    gold = doc_to_target(doc)
    assert gold == format_answer(doc["answer_kind"], json.loads(doc["answer"]))
    length = str(doc["length"])
    assert process_results(doc, [f"Let me check.\n{gold}"]) == {"score": 1.0, "parsed": 1.0, length: 1.0}
    # lm-eval cuts the generation before the stop string "</answer>": still a full answer.
    assert process_results(doc, [gold.removesuffix("</answer>")])["score"] == 1.0
    assert process_results(doc, [""]) == {"score": 0.0, "parsed": 0.0, length: 0.0}


# --- length guard ------------------------------------------------------------------------------


def test_requested_tasks_expands_groups_and_globs():
    assert requested_tasks([GROUP]) == STORY
    assert requested_tasks([ALL_GROUP]) == TASKS
    assert requested_tasks(["longtasks_ruler_static"]) == [
        "ruler_niah_static",
        "ruler_vt_static",
        "ruler_cwe_static",
    ]
    assert requested_tasks(["story_multihop", "hellaswag"]) == ["story_multihop"]
    assert requested_tasks(["story_*_static"]) == [static_name(t) for t in STORY]
    assert sorted(requested_tasks(["longtasks_*"])) == sorted(ALL_TASKS)


def test_guard_sets_or_checks_max_length():
    assert guard_model_args("hf", {"pretrained": "x"}, 3000) == {"pretrained": "x", "max_length": 3000}
    assert guard_model_args("hf", {"max_length": 4000}, 3000) == {"max_length": 4000}
    with pytest.raises(LengthGuardError, match="at least 3000"):
        guard_model_args("hf", {"max_length": "2999"}, 3000)
    with pytest.raises(LengthGuardError, match="no-such-model"):
        guard_model_args("no-such-model", {}, 3000)


class _VllmLike(LM):
    """Stands in for lm-eval's vllm model (vllm is not installed here): it takes max_model_len."""

    def __init__(self, max_length: int | None = None, max_model_len: int | None = None) -> None:
        super().__init__()

    def loglikelihood(self, requests): ...

    def loglikelihood_rolling(self, requests): ...

    def generate_until(self, requests): ...


register_model("longtasks-test-vllm-like")(_VllmLike)


class _NoLength(_VllmLike):
    __init__ = LM.__init__


register_model("longtasks-test-no-length")(_NoLength)


def test_guard_checks_max_model_len_and_refuses_models_without_a_length():
    assert guard_model_args("longtasks-test-vllm-like", {"max_model_len": 3000}, 3000) == {
        "max_model_len": 3000
    }
    with pytest.raises(LengthGuardError, match="max_model_len=100"):
        guard_model_args("longtasks-test-vllm-like", {"max_model_len": 100}, 3000)
    with pytest.raises(LengthGuardError, match="takes no max_length"):
        guard_model_args("longtasks-test-no-length", {}, 3000)


# --- `longtasks eval` argument wiring (no run) -------------------------------------------------


def prepared(argv: list[str], **settings):
    _, args = parse_lm_eval_args(argv)
    return prepare_run(args, TaskSettings(**settings))


def test_prepare_run_wires_metadata_include_path_and_max_length():
    args = prepared(
        ["--model", "hf", "--model_args", "pretrained=qwen2.5", "--tasks", GROUP, "--apply_chat_template"],
        lengths=(2048, 4096), num_samples=3, seed=4, knobs={"story_multihop": {"hops": "2"}, "story_filtering": {}},
    )  # fmt: skip
    assert args.include_path == str(tasks_dir())
    assert args.metadata == {
        "chat": True, "max_seq_lengths": [2048, 4096], "num_samples": 3, "seed": 4,
        "knobs": {"story_multihop": {"hops": "2"}}, "progress": True,
    }  # fmt: skip
    assert args.model_args == {"pretrained": "qwen2.5", "max_length": 4096 + generation_budget(STORY)}


def test_prepare_run_without_chat_flag_and_with_user_budget_and_include_path(tmp_path):
    args = prepared(
        ["--tasks", "story_multihop", "--metadata", "tokenizer=qwen2.5", "--gen_kwargs", "max_gen_toks=100",
         "--include_path", str(tmp_path)],
        lengths=(1024,),
    )  # fmt: skip
    assert args.metadata["chat"] is False and args.metadata["gen_budget"] == 100
    assert args.metadata["tokenizer"] == "qwen2.5"
    assert args.include_path == [str(tmp_path), str(tasks_dir())]
    assert args.model_args == {"max_length": 1024 + 100}


def test_prepare_run_rejects_contradictions():
    with pytest.raises(EvalUsageError, match="given twice"):
        prepared(["--tasks", "story_multihop", "--metadata", "seed=1"], lengths=(1024,), seed=2)
    with pytest.raises(EvalUsageError, match="apply_chat_template"):
        prepared(["--tasks", "story_multihop", "--metadata", "chat=true"], lengths=(1024,))
    with pytest.raises(EvalUsageError, match="system_instruction"):
        prepared(["--tasks", "story_multihop", "--system_instruction", "Be brief."], lengths=(1024,))
    with pytest.raises(
        EvalUsageError, match="--cache_requests true reloads requests cached under a key that"
    ):
        prepared(["--tasks", "story_multihop", "--cache_requests", "true"], lengths=(1024,))
    prepared(["--tasks", "story_multihop", "--cache_requests", "refresh"], lengths=(1024,))


def test_use_cache_is_kept_apart_per_sparse_method_and_compression(tmp_path):
    """lm-eval keys its --use_cache by the request alone: a dense run read a snapkv run's generations."""
    pytest.importorskip("sparse_eval.lm_eval_model")  # registers sparse-hf

    def cache(model_args: str) -> str:
        argv = ["--model", "sparse-hf", "--model_args", f"pretrained=qwen2.5,{model_args}", "--tasks",
                "story_multihop", "--use_cache", str(tmp_path / "c")]  # fmt: skip
        return prepared(argv, lengths=(1024,)).use_cache

    snapkv = cache("method=snapkv,compression=8")
    assert snapkv.startswith(str(tmp_path / "c-snapkv-"))
    assert snapkv == cache("method=snapkv,compression=8")  # the same run finds its cache again
    assert len({snapkv, cache("method=snapkv,compression=4"), cache("method=dense")}) == 3


@pytest.mark.parametrize(
    ("model_args", "message"),
    [
        ("method=snapkvv", "unknown sparse method 'snapkvv' in --model_args; available: .*ada_snapkv"),
        ("method=snapkv,compression=0.5", "compression"),
        ("method=quest,window=256", "no argument.s. window .they belong to other methods.*page_size"),
        ("method=snapkv,window=abc", "window='abc' is not a valid int"),
        ("method=snapkv,sparse_backend=cuda", "backend must be one of"),
        ("method=snapkv,batch_size=auto", "needs a fixed batch_size, e.g. batch_size=8 .got 'auto'."),
    ],
)
def test_sparse_hf_arguments_are_refused_before_any_data_is_generated(model_args, message):
    """The model is never built and no sample generated: prepare_run refuses with one line naming the value."""
    import_model_plugins()  # as `longtasks eval` does before parsing (registers sparse-hf)
    argv = [
        "--model",
        "sparse-hf",
        "--model_args",
        f"pretrained=nowhere,{model_args}",
        "--tasks",
        "story_multihop",
    ]
    with pytest.raises(EvalUsageError, match=f"--model sparse-hf: .*{message}"):
        prepared(argv, lengths=(1024,))


def test_sparse_hf_refuses_batch_size_auto_given_as_lm_eval_option():
    """`--batch_size auto` (lm-eval's own option, not a model argument) is refused as early as batch_size=auto."""
    import_model_plugins()
    argv = ["--model", "sparse-hf", "--model_args", "pretrained=nowhere,method=snapkv", "--tasks", "story_multihop",
            "--metadata", "tokenizer=qwen2.5", "--batch_size", "auto"]  # fmt: skip
    with pytest.raises(EvalUsageError, match=r"--model sparse-hf: .*needs a fixed batch_size.*got 'auto'"):
        prepared(argv, lengths=(1024,))
    argv[-1] = "4"
    assert prepared(argv, lengths=(1024,)).batch_size == "4"


def test_longtasks_eval_shows_our_info_lines_through_lm_evals_handler():
    """The model's max_length and sparse-hf's achieved compression are INFO lines of our own loggers."""
    import logging

    from longtasks.lm_eval_tasks.launch import share_lm_eval_logging

    share_lm_eval_logging()
    source = logging.getLogger("lm_eval")
    for name in ("longtasks.lm_eval_tasks.launch", "sparse_eval.lm_eval_model"):
        logger = logging.getLogger(name)
        assert logger.getEffectiveLevel() == source.getEffectiveLevel()
        assert set(source.handlers) <= set(logging.getLogger(name.split(".")[0]).handlers)


def test_prepare_run_leaves_other_tasks_alone():
    args = prepared(["--tasks", "hellaswag", "--model_args", "pretrained=gpt2"])
    assert args.model_args == {"pretrained": "gpt2"} and not args.metadata


def test_lengths_within_limit_follow_lm_evals_first_documents_rule():
    assert lengths_within_limit(2, [1024, 2048], 2) == [1024]
    assert lengths_within_limit(3, [1024, 2048], 2) == [1024, 2048]
    assert lengths_within_limit(0.5, [1024, 2048, 4096], 10) == [1024, 2048]
    assert lengths_within_limit(1000, [1024], 10) == [1024]


def test_python_helpers_build_manager_and_max_length():
    manager = task_manager([2048, "1k"], num_samples=2, seed=3, include_defaults=False)
    docs = manager.load(["story_filtering"])["tasks"]["story_filtering"].eval_docs
    assert docs["length"] == [1024, 1024, 2048, 2048] and set(docs["seed"]) == {3}
    assert max_length_for(["4k"], ["story_multihop"]) == 4096 + generation_budget(["story_multihop"])
    assert max_length_for([4096], max_gen_toks=10) == 4096 + 10
    with pytest.raises(ValueError, match="no longtasks task"):
        max_length_for([4096], ["hellaswag"])


def test_sparse_hf_is_registered_and_guarded_and_builtin_models_still_resolve():
    """`longtasks eval` imports sparse_eval's lm-eval model so --model sparse-hf works; lm-eval's own
    model table must survive a plugin registering first."""
    assert import_model_plugins() == ["sparse_eval.lm_eval_model"]
    assert guard_model_args("sparse-hf", {"method": "snapkv"}, 3000) == {
        "method": "snapkv",
        "max_length": 3000,
    }
    assert guard_model_args("hf", {}, 3000) == {"max_length": 3000}


def test_a_too_small_max_length_in_metadata_fails_before_generating():
    """Plain `lm-eval --model_args max_length=...` merges model args into the metadata: a value that
    would truncate is refused at task load (4096 + the 256-token budget do not fit in 4100)."""
    with pytest.raises(LengthGuardError, match="max_length=4100"):
        make_manager(max_seq_lengths=[4096], num_samples=1, max_length=4100).load(["story_multihop"])
    with pytest.raises(LengthGuardError, match="max_model_len=4100"):
        dataset.generated(
            longtasks_task="story_multihop",
            max_seq_lengths=[4096],
            num_samples=1,
            max_model_len=4100,
            gen_budget=256,
        )
    assert (
        len(
            dataset.generated(
                longtasks_task="story_multihop",
                max_seq_lengths=[1024],
                num_samples=1,
                max_length=1280,
                gen_budget=256,
            )["test"]
        )
        == 1
    )


def test_static_reads_a_folder_regenerated_in_place(tmp_path):
    """`datasets` caches a local folder by path and config name; a folder regenerated with other settings
    under the same path must still be read as it is now."""
    from longtasks.dataset_dir import generate_to_dir

    generate_to_dir(tmp_path, ["story_multihop"], [1024], num_samples=2, seed=1, progress=False)
    first = dataset.static(longtasks_task="story_multihop", data_path=str(tmp_path))["test"]
    generate_to_dir(
        tmp_path, ["story_multihop"], [1024], num_samples=2, seed=2, progress=False, overwrite=True
    )
    second = dataset.static(longtasks_task="story_multihop", data_path=str(tmp_path))["test"]
    assert set(first["seed"]) == {1} and set(second["seed"]) == {2}


def test_a_metadata_tokenizer_that_differs_from_the_models_is_refused(tmp_path):
    """Plain lm-eval merges model args into the metadata: `pretrained` names the model's tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(
        ["the value for key is"] * 10, trainers.WordPieceTrainer(vocab_size=60, special_tokens=["[UNK]"])
    )
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="encodes text differently from the model's"):
        dataset.generated_rows(
            "ruler_vt",
            {
                "max_seq_lengths": [1024],
                "num_samples": 1,
                "tokenizer": "qwen2.5",
                "pretrained": str(tmp_path),
            },
        )
    same = load_tokenizer().hf
    same.save_pretrained(tmp_path / "same")
    rows = dataset.generated_rows(
        "ruler_vt",
        {
            "max_seq_lengths": [1024],
            "num_samples": 1,
            "tokenizer": "qwen2.5",
            "pretrained": str(tmp_path / "same"),
        },
    )
    assert rows[0]["input_tokens"] == 1024
