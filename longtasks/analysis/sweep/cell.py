"""Run one cell through lm-eval in this process and save it the way `lm-eval --output_path --log_samples`
does (results JSON + samples JSONL), plus the model's config.json and sparse-hf's compression report.

Why in-process instead of one `longtasks eval` subprocess per cell: lm-eval's command line indexes all of its
~15k bundled task files on every start (about 10 s here, most of a small cell), while one TaskManager over our
tasks only is cheap; and holding the model object lets the sweep save the compression sparse-hf actually
achieved (`lm.report`), which the command line drops. Robustness comes from the folders instead: a cell is
written into a hidden temporary folder and renamed when complete, so a killed sweep leaves no half cell and
resumes where it stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from longtasks.analysis.io import write_json
from longtasks.analysis.store.model_info import MODEL_CONFIG_FILE
from longtasks.analysis.store.runs import TMP_PREFIX
from longtasks.analysis.store.table import COMPRESSION_REPORT_KEY
from longtasks.analysis.sweep.grid import Cell, SweepSpec, public_model_args

__all__ = ["TMP_PREFIX", "evaluate_cell", "save_cell"]


def _model_config(lm: Any) -> dict[str, Any] | None:
    model = getattr(lm, "model", None)
    config = getattr(model, "config", None)
    return config.to_dict() if config is not None and hasattr(config, "to_dict") else None


def evaluate_cell(lm: Any, cell: Cell, spec: SweepSpec, model_args: dict[str, Any]) -> dict[str, Any]:
    """lm-eval results (with samples) of `lm` on the spec's tasks at the cell's length."""
    from lm_eval import simple_evaluate

    from longtasks.lm_eval_tasks.manager import task_manager

    tokenizer = str(model_args.get("tokenizer") or model_args.get("pretrained"))
    manager = task_manager(
        [cell.length], tokenizer=tokenizer, chat=spec.chat, num_samples=spec.num_samples, seed=spec.seed,
        include_defaults=False, progress=False, max_length=getattr(lm, "max_length", None),
        **({"gen_budget": spec.max_gen_toks()} if spec.max_gen_toks() else {}),
    )  # fmt: skip
    if hasattr(lm, "reset_report"):
        lm.reset_report()  # one record per cell, not accumulated over the cells of this model object
    elif hasattr(getattr(lm, "report", None), "reset"):
        lm.report.reset()
    report = getattr(lm, "report", None)
    results = simple_evaluate(
        model=lm, tasks=list(spec.tasks), task_manager=manager, apply_chat_template=spec.chat,
        gen_kwargs=spec.gen_kwargs, log_samples=True, bootstrap_iters=0, verbosity="WARNING",
    )  # fmt: skip
    results["config"]["model"] = spec.model_type
    results["config"]["model_args"] = model_args
    if report is not None and hasattr(report, "to_dict"):
        results["config"].setdefault(COMPRESSION_REPORT_KEY, report.to_dict())
    return results


def save_cell(results: dict[str, Any], lm: Any, final: Path) -> Path:
    """Write results, samples and the model config into a temporary folder, then move it to `final`."""
    from lm_eval.utils import handle_non_serializable

    tmp = final.parent / f"{TMP_PREFIX}{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
    samples = results.pop("samples")
    config_args = results.get("config", {}).get("model_args")
    if isinstance(config_args, dict):  # a gated model's token reached the model; it is never written
        results["config"]["model_args"] = public_model_args(config_args)
    for task, rows in samples.items():
        with (tmp / f"samples_{task}_{stamp}.jsonl").open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, default=handle_non_serializable, ensure_ascii=False) + "\n")
    config = _model_config(lm)
    if config is not None:
        write_json(tmp / MODEL_CONFIG_FILE, config)
    (tmp / f"results_{stamp}.json").write_text(
        json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False), encoding="utf-8"
    )
    tmp.rename(final)
    return final
