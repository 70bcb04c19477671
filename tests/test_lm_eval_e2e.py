"""Every task through real lm-eval, offline: `simple_evaluate` with scripted LMs and a tiny
random Hugging Face model, and the `longtasks eval` wrapper around lm-eval's command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from lm_eval import simple_evaluate
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from typer.testing import CliRunner

from longtasks.commands import eval as eval_command
from longtasks.lm_eval_tasks import tasks_dir
from longtasks.lm_eval_tasks.guard import required_max_length
from longtasks.lm_eval_tasks.manager import max_length_for, task_manager
from longtasks.registry import ALL_GROUP, list_tasks, static_name
from longtasks.scoring import format_answer
from longtasks.tokenizer import load_tokenizer

TASKS = list_tasks()
GROUP = ALL_GROUP
STATIC_GROUP = static_name(ALL_GROUP)
LENGTHS = [3072, 4096]


def make_manager(**metadata) -> TaskManager:
    return TaskManager(include_defaults=False, include_path=str(tasks_dir()), metadata=metadata)


def cut_at_stop(text: str, until: list[str]) -> str:
    """What lm-eval hands back: the generation up to (not including) the first stop string."""
    for stop in until:
        text = text.split(stop)[0]
    return text


class ScriptedLM(LM):
    """Answers every request with the gold answer (gold=True) or with nothing; records requests."""

    def __init__(self, gold: bool = True, max_length: int | None = None) -> None:
        super().__init__()
        self.gold = gold
        self.max_length = max_length
        self.requests: list = []

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> ScriptedLM:
        from lm_eval.utils import simple_parse_args_string

        args = simple_parse_args_string(arg_string) if isinstance(arg_string, str) else dict(arg_string)
        return cls(gold=True, max_length=int(args["max_length"]) if "max_length" in args else None)

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None) -> ScriptedLM:
        return cls(gold=True, max_length=int(arg_dict["max_length"]) if "max_length" in arg_dict else None)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        self.requests.extend(requests)
        out = []
        for request in requests:
            doc = request.doc
            _, gen_kwargs = request.args
            if not self.gold:
                out.append("")
                continue
            answer = format_answer(doc["answer_kind"], json.loads(doc["answer"]))
            out.append(cut_at_stop(f"The story says so.\n{answer}", gen_kwargs["until"]))
        return out

    @property
    def tokenizer_name(self) -> str:
        return "qwen2.5"

    def chat_template(self, chat_template: bool | str = False) -> str:
        return load_tokenizer().hf.chat_template

    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt: bool = True) -> str:
        return load_tokenizer().hf.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


register_model("longtasks-test-gold")(ScriptedLM)


def metric_keys(result: dict) -> set[str]:
    return {key.split(",")[0] for key in result if "," in key and "_stderr" not in key}


# --- scripted models through simple_evaluate ---------------------------------------------------


@pytest.fixture(scope="module")
def gold_results() -> dict:
    manager = make_manager(max_seq_lengths=LENGTHS, num_samples=2, seed=1)
    return simple_evaluate(
        model=ScriptedLM(gold=True), tasks=[GROUP], task_manager=manager, bootstrap_iters=0
    )


def test_gold_answers_score_one_on_every_task_and_length(gold_results):
    results = gold_results["results"]
    for task in TASKS:
        assert metric_keys(results[task]) == {"score", "parsed", *map(str, LENGTHS)}
        for metric in ("score", "parsed", *map(str, LENGTHS)):
            assert results[task][f"{metric},none"] == 1.0, (task, metric)
        assert gold_results["n-samples"][task]["effective"] == 2 * len(LENGTHS)
    # The group averages the lengths its YAML lists (powers of two, 1k-1M); 3072 is per task only.
    group = gold_results["groups"][GROUP]
    assert group["score,none"] == group["parsed,none"] == group["4096,none"] == 1.0
    assert "3072,none" not in group


def test_empty_answers_score_zero():
    manager = make_manager(max_seq_lengths=LENGTHS, num_samples=2, seed=1)
    results = simple_evaluate(
        model=ScriptedLM(gold=False), tasks=[GROUP], task_manager=manager, bootstrap_iters=0
    )
    for task in TASKS:
        for metric in ("score", "parsed", *map(str, LENGTHS)):
            assert results["results"][task][f"{metric},none"] == 0.0, (task, metric)


def test_limit_takes_the_shortest_length_first():
    """--limit N keeps the first N documents of each task: all of them at the shortest length here;
    the longer length has no documents and is simply absent (no crash, no -1 placeholder)."""
    manager = make_manager(max_seq_lengths=LENGTHS, num_samples=2, seed=1)
    lm = ScriptedLM(gold=True)
    results = simple_evaluate(model=lm, tasks=[GROUP], task_manager=manager, limit=2, bootstrap_iters=0)
    for task in TASKS:
        assert metric_keys(results["results"][task]) == {"score", "parsed", str(LENGTHS[0])}
    assert {r.doc["length"] for r in lm.requests} == {LENGTHS[0]}
    assert len(lm.requests) == 2 * len(TASKS)
    assert f"{LENGTHS[1]},none" not in results["groups"][GROUP]


def test_static_group_scores_an_exported_folder(tmp_path):
    from longtasks.dataset_dir import generate_to_dir

    generate_to_dir(tmp_path, TASKS, [LENGTHS[0]], num_samples=2, seed=3, progress=False)
    lm = ScriptedLM(gold=True)
    manager = make_manager(data_path=str(tmp_path))
    results = simple_evaluate(model=lm, tasks=[STATIC_GROUP], task_manager=manager, bootstrap_iters=0)
    for task in TASKS:
        assert results["results"][static_name(task)]["score,none"] == 1.0
    assert {r.doc["seed"] for r in lm.requests} == {3}


# --- a tiny random Hugging Face model through lm-eval's HFLM -----------------------------------


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    folder = tmp_path_factory.mktemp("tiny-qwen2")
    tokenizer = load_tokenizer().hf
    tokenizer.save_pretrained(folder)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=8192,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


class RecordingHFLM(HFLM):
    """HFLM that records the number of prompt tokens each generate call receives."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prompt_tokens: list[int] = []

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        self.prompt_tokens.extend([int(context.shape[1])] * int(context.shape[0]))
        return super()._model_generate(context, max_length, stop, **generation_kwargs)


@pytest.mark.parametrize("chat", [False, True])
def test_tiny_hf_model_sees_exactly_the_requested_length(tiny_model_dir, chat, caplog):
    """Raw prompts and chat-templated prompts (lm-eval's --apply_chat_template) both reach the model
    at exactly the requested length, with max_length leaving no spare token, and lm-eval reports the
    per-length column. (A short generation budget keeps the CPU test fast.)"""
    length, budget = 2048, 64
    needed = required_max_length(length, budget)
    lm = RecordingHFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", max_length=needed)
    manager = make_manager(max_seq_lengths=[length], num_samples=2, tokenizer=str(tiny_model_dir), chat=chat)
    results = simple_evaluate(
        model=lm, tasks=["story_multihop"], task_manager=manager, apply_chat_template=chat,
        gen_kwargs={"max_gen_toks": budget}, bootstrap_iters=0,
    )  # fmt: skip
    assert lm.prompt_tokens == [length, length]
    metrics = results["results"]["story_multihop"]
    assert metric_keys(metrics) == {"score", "parsed", str(length)}
    assert 0.0 <= metrics[f"{length},none"] <= 1.0
    assert "truncat" not in caplog.text.lower()


def test_tiny_hf_model_runs_every_task_at_3k(tiny_model_dir):
    """The README's Python recipe: task_manager + max_length_for + simple_evaluate, on every task."""
    tokenizer = str(tiny_model_dir)
    max_length = max_length_for([3072], [GROUP], tokenizer=tokenizer, max_gen_toks=256)
    assert max_length == 3072 + 256
    lm = RecordingHFLM(pretrained=tokenizer, device="cpu", dtype="float32", max_length=max_length)
    manager = task_manager([3072], tokenizer=tokenizer, num_samples=1, include_defaults=False)
    results = simple_evaluate(
        model=lm, tasks=[GROUP], task_manager=manager, gen_kwargs={"max_gen_toks": 256}, bootstrap_iters=0
    )
    assert lm.prompt_tokens == [3072] * len(TASKS)
    for task in TASKS:
        assert metric_keys(results["results"][task]) == {"score", "parsed", "3072"}
    assert "score,none" in results["groups"][GROUP]


def test_max_length_on_the_manager_reaches_each_tasks_check(tiny_model_dir, caplog):
    """The README's Python recipe passes max_length to task_manager too: each task then checks it instead of
    warning that none was given (lm-eval's CLI merges model arguments into the metadata; Python does not)."""
    tokenizer = str(tiny_model_dir)
    max_length = max_length_for([1024], ["ruler_niah"], tokenizer=tokenizer)
    lm = RecordingHFLM(pretrained=tokenizer, device="cpu", dtype="float32", max_length=max_length)
    manager = task_manager(
        [1024], tokenizer=tokenizer, num_samples=1, include_defaults=False, max_length=max_length
    )
    simple_evaluate(model=lm, tasks=["ruler_niah"], task_manager=manager, bootstrap_iters=0)
    assert lm.prompt_tokens == [1024]
    assert "no max_length in the model arguments" not in caplog.text
    too_small = task_manager(
        [1024], tokenizer=tokenizer, num_samples=1, include_defaults=False, max_length=1024
    )
    with pytest.raises(ValueError, match="max_length=1024 is too small"):
        simple_evaluate(model=lm, tasks=["ruler_niah"], task_manager=too_small, bootstrap_iters=0)


# --- the `longtasks eval` wrapper around lm-eval's command line --------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    eval_command.register(app)

    @app.command("noop")  # a second command keeps `eval` a named subcommand
    def _noop() -> None: ...

    return app


def test_wrapper_passes_metadata_and_sets_max_length(cli, tmp_path, monkeypatch):
    created: list[ScriptedLM] = []
    original = ScriptedLM.create_from_arg_obj.__func__

    def recording(cls, arg_dict, additional_config=None):
        lm = original(cls, arg_dict, additional_config)
        created.append(lm)
        return lm

    monkeypatch.setattr(ScriptedLM, "create_from_arg_obj", classmethod(recording))
    monkeypatch.setattr(ScriptedLM, "create_from_arg_string", classmethod(recording))
    out = tmp_path / "results"
    result = CliRunner().invoke(
        cli,
        [
            "eval", "--lengths", "2k", "--num-samples", "3", "--sample-seed", "4",
            "--knob", "story_retrieval.num_questions=4", "--no-progress",
            "--model", "longtasks-test-gold", "--tasks", "story_retrieval",
            "--output_path", str(out), "--log_samples",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "story_retrieval" in result.output and "2048" in result.output
    (lm,) = created
    assert lm.max_length == 2048 + 512
    docs = [r.doc for r in lm.requests]
    assert len(docs) == 3
    assert {d["seed"] for d in docs} == {4}
    assert all(json.loads(d["knobs"])["num_questions"] == 4 for d in docs)
    assert all(len(json.loads(d["answer"])) == 4 for d in docs)
    saved = json.loads(next(out.rglob("results_*.json")).read_text())
    assert saved["results"]["story_retrieval"]["score,none"] == 1.0


def test_wrapper_runs_the_ruler_group_with_the_gold_model(cli, tmp_path):
    out = tmp_path / "results"
    result = CliRunner().invoke(
        cli,
        ["eval", "--lengths", "3k", "--num-samples", "2", "--no-progress", "--model", "longtasks-test-gold",
         "--tasks", "longtasks_ruler", "--output_path", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads(next(out.rglob("results_*.json")).read_text())
    assert {
        task: saved["results"][task]["score,none"] for task in ("ruler_niah", "ruler_vt", "ruler_cwe")
    } == {
        "ruler_niah": 1.0,
        "ruler_vt": 1.0,
        "ruler_cwe": 1.0,
    }


def test_wrapper_refuses_a_max_length_that_would_truncate(cli, tiny_model_dir):
    result = CliRunner().invoke(
        cli,
        ["eval", "--lengths", "4k", "--model", "hf", "--model_args", f"pretrained={tiny_model_dir},max_length=4096",
         "--tasks", "story_multihop"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "max_length=4096" in result.output and "4352" in result.output


def test_wrapper_refuses_sparse_arguments_for_another_model_type(cli, tiny_model_dir, tmp_path):
    """method= under --model hf would reach the model's constructor after the data is built (a traceback)."""
    result = CliRunner().invoke(
        cli,
        ["eval", "--lengths", "1k", "--model", "hf", "--model_args", f"pretrained={tiny_model_dir},method=snapkv,"
         "compression=2", "--tasks", "ruler_niah", "--output_path", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    assert "--model hf takes no compression=, method=: those are sparse-hf's arguments" in result.output


def test_wrapper_refuses_a_named_chat_template_and_missing_lengths(cli):
    named = CliRunner().invoke(
        cli, ["eval", "--lengths", "4k", "--tasks", "story_multihop", "--apply_chat_template", "tool_use"]
    )
    assert named.exit_code == 2 and "without a template name" in named.output
    missing = CliRunner().invoke(cli, ["eval", "--model", "hf", "--tasks", GROUP])
    assert missing.exit_code == 2 and "--lengths" in missing.output


# --- plain lm-eval: the task checks every request -------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"apply_chat_template": True}, "run lm-eval without --apply_chat_template"),
        ({"gen_kwargs": {"max_gen_toks": 20}}, "max_gen_toks=20 leaves no room"),
        ({"gen_kwargs": {"max_gen_toks": 2048}, "max_length": 3072}, "max_length=3072 cannot hold"),
    ],
)
def test_plain_lm_eval_refuses_requests_that_would_not_be_exact(change, message):
    """Without `longtasks eval`, a chat flag that differs from the data, a budget below the answer, or a
    budget that pushes the prompt past max_length fail the run instead of being cut or mis-sized."""
    from longtasks.lm_eval_tasks.guarded_task import RequestGuardError

    metadata = {"max_seq_lengths": [2048], "num_samples": 1, "chat": False}
    if "max_length" in change:
        metadata["max_length"] = change["max_length"]
    with pytest.raises(RequestGuardError, match=message):
        simple_evaluate(
            model=ScriptedLM(gold=True),
            tasks=["story_multihop"],
            task_manager=make_manager(**metadata),
            apply_chat_template=change.get("apply_chat_template", False),
            gen_kwargs=change.get("gen_kwargs"),
            bootstrap_iters=0,
        )


def test_wrapper_refuses_prompts_beyond_the_models_context(cli, tiny_model_dir):
    """8k prompts + the budget do not fit a model trained for 8192 positions: refused before generating,
    unless the user sets max_length themselves."""
    from longtasks.lm_eval_tasks.launch import TaskSettings, parse_lm_eval_args, prepare_run

    result = CliRunner().invoke(
        cli, ["eval", "--lengths", "8k", "--model", "hf", "--model_args", f"pretrained={tiny_model_dir}",
              "--tasks", "ruler_vt"],
    )  # fmt: skip
    assert result.exit_code == 2 and "max_position_embeddings" in " ".join(result.output.split())
    _, args = parse_lm_eval_args(
        [
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_model_dir},max_length=9000",
            "--tasks",
            "ruler_vt",
        ]
    )
    assert prepare_run(args, TaskSettings(lengths=(8192,))).model_args["max_length"] == 9000


def test_wrapper_refuses_a_tokenizer_larger_than_the_models_vocabulary(cli, tiny_model_dir, tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.vocab_size = 1000
    small = tmp_path / "small-vocab"
    config.save_pretrained(small)
    result = CliRunner().invoke(
        cli, ["eval", "--lengths", "1k", "--model", "hf", "--model_args",
              f"pretrained={small},tokenizer={tiny_model_dir}", "--tasks", "ruler_vt"],
    )  # fmt: skip
    assert result.exit_code == 2 and "embedding holds 1000" in " ".join(result.output.split())


@pytest.fixture(scope="module")
def bos_model_dir(tmp_path_factory) -> Path:
    """A tiny model whose tokenizer prepends <s> (Llama-style) and whose chat template starts with it."""
    from _trained_tokenizers import train_tokenizer
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from longtasks.generation import generate_samples

    corpus = [s.prompt for s in generate_samples("story_multihop", 3000, 2, tokenizer=load_tokenizer())]
    hf = train_tokenizer("bytelevel_bpe", corpus, vocab_size=600, add_bos=True).hf
    folder = tmp_path_factory.mktemp("tiny-bos")
    hf.save_pretrained(folder)
    config = Qwen2Config(
        vocab_size=len(hf), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=8192, eos_token_id=hf.convert_tokens_to_ids("</s>"),
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("chat", [False, True])
def test_a_bos_adding_tokenizer_needs_no_extra_max_length(bos_model_dir, chat, caplog):
    """The prompt's length already counts the BOS the model is fed, so max_length_for gives length + budget
    exactly and lm-eval still sees the whole prompt (it used to ask for one token more and refuse runs
    that fit)."""
    length, budget = 2048, 64
    needed = max_length_for([length], ["story_multihop"], tokenizer=str(bos_model_dir), max_gen_toks=budget)
    assert needed == length + budget
    lm = RecordingHFLM(pretrained=str(bos_model_dir), device="cpu", dtype="float32", max_length=needed)
    manager = make_manager(max_seq_lengths=[length], num_samples=1, tokenizer=str(bos_model_dir), chat=chat)
    simple_evaluate(
        model=lm, tasks=["story_multihop"], task_manager=manager, apply_chat_template=chat,
        gen_kwargs={"max_gen_toks": budget}, bootstrap_iters=0,
    )  # fmt: skip
    assert lm.prompt_tokens == [length]
    assert "truncat" not in caplog.text.lower()
