"""Write the lm-eval YAML files of this folder from the task registry.

lm-eval reads tasks from YAML, so the registry's names, groups, generation budgets and per-length metric
columns are rendered into files here: ``python -m longtasks.lm_eval_tasks.yaml_files --write`` after
changing the registry (a test fails while the checked-in files differ from what this renders).
Every task shares one template and one pair of `custom_dataset` functions; its YAML only names the task.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from longtasks.lm_eval_tasks import tasks_dir
from longtasks.registry import LENGTH_COLUMNS, TASKS, gen_budget, groups, static_name

TEMPLATE_NAME = "_longtasks_template_yaml"
"""Shared settings (not a task itself: lm-eval only indexes *.yaml files)."""

HEADER = "# Generated from longtasks/registry.py by `python -m longtasks.lm_eval_tasks.yaml_files --write`.\n"
METRICS = ("score", "parsed", *(str(length) for length in LENGTH_COLUMNS))


def _template() -> str:
    metrics = "".join(
        f'  - metric: "{name}"\n    aggregation: mean\n    higher_is_better: true\n' for name in METRICS
    )
    return (
        HEADER
        + "# Shared settings of every longtasks task. Documents are rows of longtasks.sample.Sample; the prompt\n"
        "# is the user message, scored by longtasks.scoring. No few-shot examples: a prompt must stay exactly\n"
        "# `length` tokens long. Metrics: score and parsed over all documents, plus one column per length.\n"
        "# Every request is checked before lm-eval runs it (exact length, answer budget, no truncation).\n"
        "class: !function longtasks.lm_eval_tasks.guarded_task.GuardedTask\n"
        'dataset_path: ""\n'
        "output_type: generate_until\n"
        "test_split: test\n"
        "num_fewshot: 0\n"
        "doc_to_text: prompt\n"
        "doc_to_target: !function longtasks.lm_eval_tasks.metrics.doc_to_target\n"
        "process_results: !function longtasks.lm_eval_tasks.metrics.process_results\n"
        f"metric_list:\n{metrics}"
        "repeats: 1\n"
        "metadata:\n  version: 1.0\n"
    )


def _task(name: str) -> str:
    budget = gen_budget(name)
    return (
        HEADER + f"include: {TEMPLATE_NAME}\n"
        f"task: {name}\n"
        "custom_dataset: !function longtasks.lm_eval_tasks.dataset.generated\n"
        "# Generation stops at </answer> (the scorer accepts an answer block left open at the end), at the\n"
        "# end-of-turn token, or after max_gen_toks tokens (the task's budget in the registry).\n"
        "generation_kwargs:\n"
        '  until:\n    - "</answer>"\n'
        "  do_sample: false\n"
        "  temperature: 0.0\n"
        f"  max_gen_toks: {budget}\n"
        "# gen_budget: the same budget for the check that every gold answer fits it (`longtasks eval` keeps it\n"
        "# equal to a --gen_kwargs max_gen_toks=N; with plain lm-eval pass --metadata gen_budget=N too).\n"
        "metadata:\n"
        "  version: 1.0\n"
        f"  longtasks_task: {name}\n"
        f"  gen_budget: {budget}\n"
    )


def _static(name: str) -> str:
    return (
        HEADER
        + f"# {name} read from an exported dataset: --metadata data_path=DIR (a `longtasks generate --out DIR`\n"
        "# folder) or dataset=OWNER/NAME (the Hub). Same prompts, generation settings and metrics.\n"
        f"include: {name}.yaml\n"
        f"task: {static_name(name)}\n"
        "custom_dataset: !function longtasks.lm_eval_tasks.dataset.static\n"
    )


def _group(name: str, members: list[str]) -> str:
    tasks = "".join(f"  - {member}\n" for member in members)
    metrics = "".join(f'  - metric: "{metric}"\n    weight_by_size: false\n' for metric in METRICS)
    return (
        HEADER
        + "# Group columns are the unweighted mean over its tasks; lengths that were not run are simply absent.\n"
        f"group: {name}\n"
        f"task:\n{tasks}"
        f"aggregate_metric_list:\n{metrics}"
        "metadata:\n  version: 1.0\n"
    )


def render_all() -> dict[str, str]:
    """File name -> content of every YAML file the registry implies."""
    files = {TEMPLATE_NAME: _template()}
    for name in TASKS:
        files[f"{name}.yaml"] = _task(name)
        files[f"{static_name(name)}.yaml"] = _static(name)
    for group, members in groups().items():
        files[f"{group}.yaml"] = _group(group, members)
    return files


def stale_files(folder: Path | None = None) -> list[str]:
    """Names of files that are missing, differ, or are left over from tasks no longer registered."""
    folder = folder or tasks_dir()
    wanted = render_all()
    on_disk = {p.name for p in folder.iterdir() if p.suffix == ".yaml" or p.name == TEMPLATE_NAME}
    differ = [
        n for n, text in wanted.items() if not (folder / n).is_file() or (folder / n).read_text() != text
    ]
    return sorted(set(differ) | (on_disk - set(wanted)))


def write_all(folder: Path | None = None) -> list[str]:
    """Write every file (and delete left-over YAML files); return the names that changed."""
    folder = folder or tasks_dir()
    changed = stale_files(folder)
    wanted = render_all()
    for name in changed:
        path = folder / name
        if name in wanted:
            path.write_text(wanted[name], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the files (default: list stale ones)")
    args = parser.parse_args()
    names = write_all() if args.write else stale_files()
    verb = "rewrote" if args.write else "stale"
    print(f"{verb}: {', '.join(names)}" if names else "all lm-eval YAML files are up to date")
    if names and not args.write:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
