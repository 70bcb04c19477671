"""Score the reference model's predictions on the CPU and write the model card's tables (CPU).

Each (method, compression) group of `evaluate.py`'s JSONL is scored with `longtasks.scoring.score` against the
generated folder (only the rows that group predicted). Writes OUT/scores.csv (mean and n per method, c, task,
length), OUT/results.csv (one row per sample, in the `longtasks analyze` table format),
OUT/grid.csv (the complete sparse cells and dense on the same samples: `longtasks analyze OUT/grid.csv --out
OUT/analysis` draws the accuracy-vs-compression plot and the maximum-compression table) and OUT/loss.png from
the `train_log.json` of each training stage.

    python models/reference/collect.py preds.jsonl [more.jsonl ...] --data EVAL_DIR --out OUT [--log stage1.json stage2.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from pathlib import Path

from longtasks.analysis.methods import REPORT_PHASES, method_phase
from longtasks.analysis.store.table import COLUMNS
from longtasks.scoring import score

MODEL = "SmolLM2-135M-Instruct+longtasks-reference"
ARCH = {
    "n_layers": 30,
    "hidden_size": 576,
    "n_heads": 9,
    "n_kv_heads": 3,
    "head_dim": 64,
    "intermediate_size": 1536,
    "vocab_size": 49152,
}
N_PARAMS = 134_515_008


def achieved(method: str, report: dict | None) -> float:
    if method == "dense" or not report:
        return 1.0
    phase = report.get(REPORT_PHASES.get(method, ""), {})
    value = phase.get("achieved_compression") if isinstance(phase, dict) else None
    return float(value) if isinstance(value, int | float) else math.nan


def collect(paths: list[Path], data: Path) -> list[dict]:
    """One results-table row per scored prediction."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            groups[(record["method"], float(record["compression"]))].append(record)
    rows = []
    for (method, c), records in sorted(groups.items()):
        by_id = {r["id"]: r for r in records}
        report = score([{"id": i, "prediction": r["prediction"]} for i, r in by_id.items()], data)
        for sample in report.per_sample:
            if sample["missing"]:
                continue
            record = by_id[sample["id"]]
            rows.append(
                {
                    "run": f"reference-{method}-{c:g}",
                    "model": MODEL,
                    "model_name": "SmolLM2-135M+ref",
                    "n_params": N_PARAMS,
                    **ARCH,
                    "task": sample["task"],
                    "length": sample["length"],
                    "sample_id": sample["id"],
                    "doc_hash": sample["id"],
                    "method": method,
                    "phase": method_phase(method),
                    "target_compression": c,
                    "achieved_compression": achieved(method, record.get("report")),
                    "method_args": "",
                    "chat": True,
                    "score": sample["score"],
                    "parsed": sample["parsed"],
                }
            )
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    cells: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        cells[(row["method"], row["target_compression"], row["task"], row["length"])].append(row["score"])
    return [
        {
            "method": m,
            "compression": c,
            "task": t,
            "length": n,
            "n": len(v),
            "score": round(sum(v) / len(v), 3),
        }
        for (m, c, t, n), v in sorted(cells.items())
    ]


def paired_grid(rows: list[dict]) -> list[dict]:
    """The rows `longtasks analyze` compares: for each (task, length) that a sparse method ran, the sparse
    cells that hold the most samples of it (a cell cut short by the time limit is left out) and dense on
    exactly those samples, so every test is paired on the same ids."""
    cells: dict[tuple, set[str]] = defaultdict(set)
    for row in rows:
        cells[(row["task"], row["length"], row["method"], row["target_compression"])].add(row["sample_id"])
    keep: dict[tuple, set[str]] = {}
    for (task, length, method, c), ids in cells.items():
        if method == "dense":
            continue
        full = max(len(v) for k, v in cells.items() if k[:2] == (task, length) and k[2] != "dense")
        if len(ids) == full:
            keep[(task, length, method, c)] = ids
            keep.setdefault((task, length, "dense", 1.0), set()).update(ids)
    return [
        row
        for row in rows
        if row["sample_id"]
        in keep.get((row["task"], row["length"], row["method"], row["target_compression"]), ())
    ]


def loss_plot(log_paths: list[Path], out: Path, window: int = 25) -> None:
    """Per-task answer loss over the steps of one or more training stages (`train.py --init-adapter`),
    numbered on, with a dotted line where a stage starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log, starts = [], []
    for path in log_paths:
        offset = log[-1]["step"] if log else 0
        starts.append(offset)
        log += [{**e, "step": e["step"] + offset} for e in json.loads(path.read_text())["log"]]
    steps = [e["step"] for e in log]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for start in starts[1:]:
        ax.axvline(start, color="grey", linestyle=":", linewidth=1)
    sums: dict[str, list[tuple[int, float, int]]] = defaultdict(list)
    for e in log:
        for task, (total, count) in e["tasks"].items():
            sums[task].append((e["step"], total, count))
    for task, points in sorted(sums.items()):
        xs, ys = [], []
        for i in range(0, len(points), window):
            chunk = points[i : i + window]
            xs.append(chunk[-1][0])
            ys.append(sum(p[1] for p in chunk) / sum(p[2] for p in chunk))
        ax.plot(xs, ys, label=task, linewidth=1.2)
    losses = [e["loss"] for e in log]
    smooth = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
    ax.plot(steps, smooth, color="black", linewidth=2, label=f"all (mean of {window} steps)")
    ax.set_yscale("log")
    ax.set_xlabel("step (32k tokens each)")
    ax.set_ylabel("answer-token cross-entropy")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("predictions", nargs="+", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--log", type=Path, nargs="*", default=[], help="train_log.json of each stage, in order")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = collect(args.predictions, args.data)
    with (args.out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    with (args.out / "grid.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(paired_grid(rows))
    table = summarise(rows)
    with (args.out / "scores.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    for row in table:
        print(
            f"{row['method']:15s} c={row['compression']:<5g} {row['task']:16s} {row['length']:5d} "
            f"n={row['n']:3d} {row['score']:.3f}"
        )
    if args.log:
        loss_plot(args.log, args.out / "loss.png")


if __name__ == "__main__":
    main()
