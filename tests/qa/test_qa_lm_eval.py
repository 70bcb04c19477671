"""The QA group through `longtasks eval` (lm-eval's command line): a model that answers with the gold
answer scores 1.0 on every QA task, a model that answers nothing scores 0.0."""

from __future__ import annotations

import json

import pytest
import typer
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from typer.testing import CliRunner

from longtasks.commands import eval as eval_command
from longtasks.registry import list_tasks
from longtasks.scoring import format_answer


class _Scripted(LM):
    """Answers every request with its gold answer after a line of reasoning (or with nothing)."""

    gold = True

    def __init__(self, max_length: int | None = None) -> None:
        super().__init__()
        self.max_length = max_length

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> LM:
        from lm_eval.utils import simple_parse_args_string

        return cls.create_from_arg_obj(simple_parse_args_string(arg_string))

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None) -> LM:
        return cls(max_length=int(arg_dict["max_length"]) if "max_length" in arg_dict else None)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        outputs = []
        for request in requests:
            if not self.gold:
                outputs.append("")
                continue
            answer = format_answer(request.doc["answer_kind"], json.loads(request.doc["answer"]))
            outputs.append(f"The document says so.\n{answer}".split("</answer>")[0])  # cut at the stop string
        return outputs

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


class _Silent(_Scripted):
    gold = False


register_model("longtasks-qa-gold")(_Scripted)
register_model("longtasks-qa-null")(_Silent)


@pytest.mark.parametrize(("model", "expected"), [("longtasks-qa-gold", 1.0), ("longtasks-qa-null", 0.0)])
def test_longtasks_eval_runs_the_qa_group(tmp_path, model, expected):
    app = typer.Typer()
    eval_command.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `eval` a named subcommand
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app,
        ["eval", "--lengths", "3k", "--num-samples", "2", "--no-progress", "--model", model,
         "--tasks", "longtasks_qa", "--output_path", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads(next(out.rglob("results_*.json")).read_text())
    for task in list_tasks("qa"):
        assert saved["results"][task]["score,none"] == expected
        assert saved["results"][task]["parsed,none"] == expected
    assert saved["groups"]["longtasks_qa"]["score,none"] == expected
