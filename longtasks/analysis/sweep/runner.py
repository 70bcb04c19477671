"""Run every unfinished cell of a sweep, one model object per (model, method, compression), with progress.

Output folder layout:

    OUT/sweep.json                                  the spec (a resumed sweep must keep its result settings)
    OUT/cells/<model>/<method>-c<compression>/L<length>/results_*.json, samples_*.jsonl, model_config.json
    OUT/results.parquet                             the tidy table of every finished cell
    OUT/failures.json                               cells that raised (with --keep-going)
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from longtasks.analysis.io import write_json
from longtasks.analysis.methods import DENSE, method_phase
from longtasks.analysis.store import read_results, save_table
from longtasks.analysis.sweep.cell import TMP_PREFIX, evaluate_cell, save_cell
from longtasks.analysis.sweep.grid import Cell, SweepSpec, cells, public_model_args

log = logging.getLogger(__name__)
SPEC_FILE = "sweep.json"
CELLS_DIR = "cells"
TABLE_FILE = "results.parquet"
FAILURES_FILE = "failures.json"


@dataclass
class SweepResult:
    done: list[Cell] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    table: Path | None = None


def check_spec(out_dir: Path, spec: SweepSpec) -> None:
    """Refuse to resume a folder whose earlier cells were measured under other settings (a folder with no
    finished cell takes the new settings: nothing in it was measured)."""
    path = out_dir / SPEC_FILE
    if path.exists() and _has_cells(out_dir):
        saved = json.loads(path.read_text(encoding="utf-8")).get("settings", {})
        if isinstance(saved.get("model_args"), dict):  # written before credentials were left out
            saved["model_args"] = public_model_args(saved["model_args"])
        now = json.loads(json.dumps(spec.settings()))
        changed = sorted(key for key in now if saved.get(key) != now[key])
        if changed:
            raise ValueError(
                f"{out_dir} holds a sweep run with other {', '.join(changed)} ("
                + "; ".join(f"{key}: {saved.get(key)!r} then, {now[key]!r} now" for key in changed)
                + "); use a new --out folder, or the same settings to resume and extend it"
            )
    write_json(path, {"settings": spec.settings(), "spec": spec.to_dict()})


def _has_cells(out_dir: Path) -> bool:
    """Whether any cell finished (a file outside the temporary folders of cells being written)."""
    cells_dir = out_dir / CELLS_DIR
    files = (p.relative_to(cells_dir).parts for p in cells_dir.rglob("*") if p.is_file())
    return any(not any(part.startswith(TMP_PREFIX) for part in parts) for parts in files)


def _check_methods_exist(spec: SweepSpec) -> None:
    """Every sparse method must be registered in sparse_eval before the dense cells spend their time (a typo
    used to fail only when its first cell built the model)."""
    if spec.model_type != "sparse-hf":
        return
    try:
        from sparse_eval.registry import list_methods
    except ImportError:  # reported when the first cell builds its model
        return
    known = list_methods()
    unknown = [m for m in spec.methods if m != DENSE and m not in known]
    if unknown:
        raise ValueError(
            f"unknown sparse method(s) {unknown}: sparse_eval has {known} (a method of your own must be registered "
            "with sparse_eval.register_method in the process that runs the sweep)"
        )


def finished_dir(cells_dir: Path, cell: Cell) -> Path | None:
    """The cell's folder if it finished: under today's name, or under the name earlier versions gave it (a
    `./model` sweep they started resumes instead of running its cells again)."""
    for relative in (cell.relative_dir, cell.legacy_dir):
        if relative.parts[0] not in (".", "..") and (cells_dir / relative).is_dir():
            return cells_dir / relative
    return None


def clean_temporary(cells_dir: Path) -> None:
    """Remove half-written cells a killed run left behind."""
    if cells_dir.exists():
        for tmp in sorted(cells_dir.rglob(f"{TMP_PREFIX}*")):
            shutil.rmtree(tmp, ignore_errors=True)


def model_args_for(spec: SweepSpec, cell: Cell) -> dict[str, Any]:
    args: dict[str, Any] = {"pretrained": cell.model, **spec.model_args}
    if spec.model_type == "sparse-hf":
        args.update(method=cell.method, compression=cell.compression)
        args.update(spec.method_args.get(cell.method, {}))
    return args


def build_lm(
    spec: SweepSpec, cell: Cell, longest: int, tokenizers: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """The lm-eval model object for a (model, method, compression), sized for the longest pending length, and
    its model arguments as recorded in the results.

    `tokenizers` (model -> the tokenizer object its first model object loaded) lets the later model objects of
    the same model reuse it instead of parsing the tokenizer files again (seconds per load for a 150k vocab);
    every cell of one model has the same tokenizer arguments, so it is the same tokenizer."""
    from lm_eval.api.registry import get_model

    from longtasks.lm_eval_tasks.guard import guard_model_args
    from longtasks.lm_eval_tasks.launch import import_model_plugins
    from longtasks.lm_eval_tasks.manager import max_length_for

    loaded = import_model_plugins()
    if spec.model_type == "sparse-hf" and not loaded:
        raise ValueError("the sparse-hf model type needs sparse_eval: pip install 'longtasks[sparse]'")
    args = model_args_for(spec, cell)
    tokenizer = str(args.get("tokenizer") or args["pretrained"])
    needed = max_length_for([longest], spec.tasks, tokenizer=tokenizer, max_gen_toks=spec.max_gen_toks())
    args = guard_model_args(spec.model_type, args, needed)
    extra = {"batch_size": 1, **({"device": spec.device} if spec.device else {})}
    cache = tokenizers if tokenizers is not None else {}
    create = {**args, "tokenizer": cache[cell.model]} if cell.model in cache else args
    lm = get_model(spec.model_type).create_from_arg_obj(create, extra)
    if getattr(lm, "tokenizer", None) is not None:
        cache.setdefault(cell.model, lm.tokenizer)
    return lm, args


def _free(lm: Any) -> None:
    del lm
    gc.collect()
    torch = sys.modules.get("torch")  # only if lm-eval loaded it: the analysis never imports torch itself
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_sweep(
    spec: SweepSpec,
    out_dir: Path,
    *,
    keep_going: bool = False,
    on_cell: Callable[[Cell, str], None] | None = None,
    phases: Mapping[str, str] | None = None,
) -> SweepResult:
    """Run the unfinished cells (finished ones are skipped), then write OUT/results.parquet.

    `on_cell(cell, state)` is called with "start", "done", "skip" or "fail" (for progress display); `phases`
    names the phase of methods the analysis does not know (checked before anything runs)."""
    _check_methods_exist(spec)
    for method in spec.methods:
        method_phase(method, phases)
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        check_spec(out_dir, spec)
        return _run_cells(spec, out_dir, keep_going, on_cell, phases)
    finally:
        if not _has_cells(out_dir):  # stopped before any cell finished: leave nothing behind
            (out_dir / SPEC_FILE).unlink(missing_ok=True)
            if created:
                shutil.rmtree(out_dir, ignore_errors=True)


def _run_cells(
    spec: SweepSpec,
    out_dir: Path,
    keep_going: bool,
    on_cell: Callable[[Cell, str], None] | None,
    phases: Mapping[str, str] | None,
) -> SweepResult:
    cells_dir = out_dir / CELLS_DIR
    clean_temporary(cells_dir)
    result = SweepResult()
    notify = on_cell or (lambda cell, state: None)
    grid = cells(spec)
    pending = []
    for cell in grid:
        if finished_dir(cells_dir, cell) is not None:
            result.skipped.append(cell)
            notify(cell, "skip")
        else:
            pending.append(cell)
    key = lambda c: (c.model, c.method, c.compression)  # noqa: E731
    tokenizers: dict[str, Any] = {}
    for _, group_iter in groupby(sorted(pending, key=lambda c: (*key(c), c.length)), key=key):
        group = list(group_iter)
        lm = None
        for cell in group:
            notify(cell, "start")
            try:
                if lm is None:
                    lm, args = build_lm(spec, cell, max(c.length for c in group), tokenizers)
                results = evaluate_cell(lm, cell, spec, args)
                final = cells_dir / cell.relative_dir
                final.parent.mkdir(parents=True, exist_ok=True)
                save_cell(results, lm, final)
            except Exception as error:  # one broken cell should not cost the rest of a long sweep
                if not keep_going:
                    raise
                result.failed[cell.label()] = "".join(traceback.format_exception_only(error)).strip()
                log.error("cell %s failed: %s", cell.label(), error)
                notify(cell, "fail")
                continue
            result.done.append(cell)
            notify(cell, "done")
        if lm is not None:
            _free(lm)
    if result.failed:  # this run's failures; cells that failed before and now finished are not listed
        write_json(out_dir / FAILURES_FILE, result.failed)
    else:
        (out_dir / FAILURES_FILE).unlink(missing_ok=True)
    if any(finished_dir(cells_dir, c) is not None for c in grid):
        result.table = save_table(read_results([cells_dir], phases), out_dir / TABLE_FILE)
    return result
