"""A per-sample results table SIMULATED from the paper's published scaling law, then every analysis on it.

The law and parameters are "The Sparse Frontier" v1 Table 3 (PAPER_NOTES §3, logistic-link reading): prefill
row "Sequence Length" for eps, delta_task, alpha (ln N), beta (ln L); gamma (ln C) from the prefill row (-1.00)
for Vertical-Slash and from the decode row (-0.94) for Quest. Grid: Qwen2.5 7B/14B/32B/72B (their real
architectures, for the cost model), 16k-128k tokens, the paper's compressions, `--samples` inputs per cell with
one difficulty per input shared by every configuration (paired, as real runs on the same inputs are).
This is not a measurement: it shows what the analyses produce on paper-scale data.

    python examples/analysis/simulate_paper.py --out examples/analysis/simulated
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from longtasks.analysis.arch import Arch
from longtasks.analysis.options import AnalysisOptions
from longtasks.analysis.report import analyze
from longtasks.analysis.scaling import ScalingLaw
from longtasks.analysis.store import COLUMNS

EPS, ALPHA, BETA = -16.92, 1.31, -1.15
GAMMA = {"vertical_slash": -1.00, "quest": -0.94}
PHASE = {"vertical_slash": "prefill", "quest": "decode"}
DELTA = {"quality": 0.0, "squad": 0.27, "toefl": 0.80, "ruler_cwe": 0.76, "ruler_niah": 14.67, "ruler_vt": -1.60,
         "story_filtering": -3.55, "story_multihop": -3.21, "story_retrieval": 1.43}  # fmt: skip
MODELS = {
    "Qwen/Qwen2.5-7B-Instruct": (7.6e9, Arch(28, 3584, 28, 4, 128, 18944, 152064)),
    "Qwen/Qwen2.5-14B-Instruct": (14.7e9, Arch(48, 5120, 40, 8, 128, 13824, 152064)),
    "Qwen/Qwen2.5-32B-Instruct": (32.8e9, Arch(64, 5120, 40, 8, 128, 27648, 152064)),
    "Qwen/Qwen2.5-72B-Instruct": (72.7e9, Arch(80, 8192, 64, 8, 128, 29568, 152064)),
}
LENGTHS = [16384, 32768, 65536, 131072]
COMPRESSIONS = [1.5, 2.0, 10 / 3, 5.0, 7.5, 10.0, 15.0, 20.0]


def simulate(samples: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    configs = [("dense", 1.0)] + [(m, c) for m in GAMMA for c in COMPRESSIONS]
    parts = []
    for model, (params, arch) in MODELS.items():
        for length in LENGTHS:
            for task, delta in DELTA.items():
                difficulty = rng.random(samples)
                for method, c in configs:
                    eta = EPS + delta + ALPHA * math.log(params) + BETA * math.log(length)
                    eta += GAMMA.get(method, 0.0) * math.log(c)
                    parts.append(pd.DataFrame({
                        "run": "simulated", "model": model, "model_name": model.split("/")[-1], "n_params": params,
                        **arch.to_dict(), "task": task, "length": length,
                        "sample_id": [f"{task}-{length}-{i}" for i in range(samples)],
                        "doc_hash": [f"{model}|{task}|{length}|{i}" for i in range(samples)], "method": method,
                        "phase": PHASE.get(method, "dense"), "target_compression": c, "achieved_compression": c,
                        "method_args": "", "chat": True, "score": (difficulty < 1 / (1 + math.exp(-eta))).astype(float),
                        "parsed": 1.0,
                    }))  # fmt: skip
    return pd.concat(parts, ignore_index=True)[list(COLUMNS)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples/analysis/simulated"))
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frame = simulate(args.samples, args.seed)
    options = AnalysisOptions(law=ScalingLaw(reference_task="quality"), n_boot=200)
    result = analyze(frame, args.out, options)
    print(
        f"{len(frame)} simulated sample rows; {len(result.tables)} tables and {len(result.plots)} plot files in {args.out}"
    )
    for note in result.notes:
        print("skipped:", note)
