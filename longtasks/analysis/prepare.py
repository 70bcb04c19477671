"""The checks and repairs every analysis needs before it groups rows, each reported as a note.

Rows measured twice (two inputs holding the same cell, e.g. two sweeps that each ran the dense baseline) would
double a test's samples or break its pairing: the last one read is kept. One model path written two ways
(`m/` and `m`, `./m`) is one model. A model whose parameter count lm-eval did not record gets the count its
architecture implies. Dense baselines run under two settings, or a model run with and without its chat
template, cannot be told apart by the analyses: refused, naming the settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from longtasks.analysis.arch import ARCH_COLUMNS, WINDOW_COLUMNS
from longtasks.analysis.methods import DENSE
from longtasks.analysis.store.model_info import model_name
from longtasks.analysis.store.table import KEY, input_key

if TYPE_CHECKING:
    import pandas as pd

ARCH_NUMBERS = tuple(column for column in ARCH_COLUMNS if column not in WINDOW_COLUMNS)
"""The architecture columns a parameter count is estimated from."""


def estimate_params(row: dict) -> float:
    """Parameters of a gated-MLP decoder from its architecture: attention and MLP weights, norms, and input
    and output embeddings counted separately (tied embeddings make the true count |V| d smaller)."""
    d, heads, kv = int(row["hidden_size"]), int(row["n_heads"]), int(row["n_kv_heads"])
    head_dim, mlp, vocab = int(row["head_dim"]), int(row["intermediate_size"]), int(row["vocab_size"])
    attention = 2 * d * heads * head_dim + 2 * d * kv * head_dim
    layer = attention + 3 * d * mlp + 2 * d
    return float(int(row["n_layers"]) * layer + 2 * vocab * d + d)


def _clean_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Empty text cells as "" (a CSV reads them as NaN, which would otherwise be the key "nan")."""
    out = frame.copy()
    for column in ("method_args", "doc_hash"):
        if column not in out.columns:
            out[column] = ""
        out[column] = out[column].fillna("").astype(str)
    out["model"] = out["model"].map(model_name)
    return out


def _deduplicate(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    before = len(frame)
    frame = frame.drop_duplicates(subset=list(KEY), keep="last").reset_index(drop=True)
    if len(frame) == before:
        return frame, []
    return frame, [
        f"{before - len(frame)} sample row(s) were measured more than once (same model, method, compression, "
        "method arguments, chat, task, length and sample id, e.g. a dense baseline in two inputs): the last "
        "one read was kept (a later input on the command line wins)"
    ]


def _check_one_setting(frame: pd.DataFrame) -> None:
    """ValueError where rows the analyses pool came from different settings."""
    dense = frame[frame["method"] == DENSE]
    for model, args in dense.groupby("model")["method_args"].unique().items():
        if len(args) > 1:
            shown = ", ".join(repr(a) if a else "(none)" for a in sorted(args))
            raise ValueError(
                f"the dense runs of {model} differ in their method arguments ({shown}), so there is no single "
                "dense baseline to compare with: analyse each setting separately (one input per setting)"
            )
    if "chat" in frame.columns:
        for model, chat in frame.groupby("model")["chat"].unique().items():
            if len(chat) > 1:
                raise ValueError(
                    f"{model} was run both with and without its chat template; the analyses would pool them: "
                    "analyse the chat and the plain runs separately (one input each)"
                )


def _check_input_keys(frame: pd.DataFrame) -> None:
    """ValueError where two samples of one configuration share an input key (they would pair by chance)."""
    columns = ["model", "method", "target_compression", "method_args", "task", "length"]
    keyed = frame.assign(_input=input_key(frame))
    repeated = keyed[keyed.duplicated([*columns, "_input"], keep=False)]
    if repeated.empty:
        return
    first = repeated.iloc[0]
    raise ValueError(
        f"{len(repeated)} samples share their input key with another sample of the same run, e.g. "
        f"{first['model']} {first['method']} {first['target_compression']:g}x on {first['task']} at length "
        f"{first['length']}: input key {first['_input']!r} (the doc_hash, or the sample_id where it is empty). "
        "Samples are paired across methods by this key, so it must be unique: give every sample its doc_hash "
        "or a distinct sample_id"
    )


def _fill_params(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Missing parameter counts: the model's recorded count from another run, else its architecture's."""
    if "n_params" not in frame.columns:
        return frame, []
    missing = frame["n_params"].isna()
    if not missing.any():
        return frame, []
    frame = frame.copy()
    recorded = frame[~missing].groupby("model")["n_params"].first()
    frame.loc[missing, "n_params"] = frame.loc[missing, "model"].map(recorded)
    notes = []
    have_arch = [c for c in ARCH_NUMBERS if c in frame.columns] == list(ARCH_NUMBERS)
    for model, rows in frame[frame["n_params"].isna()].groupby("model"):
        if not have_arch or rows[list(ARCH_NUMBERS)].isna().any(axis=None):
            continue
        estimate = estimate_params(rows.iloc[0].to_dict())
        frame.loc[rows.index, "n_params"] = estimate
        notes.append(
            f"{model}: lm-eval recorded no parameter count; {estimate / 1e9:.3g}B was estimated from its "
            "architecture (input and output embeddings counted separately)"
        )
    return frame, notes


def prepare(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """`frame` ready for every analysis, and notes on what was changed; ValueError where it cannot be."""
    frame = _clean_columns(frame)
    frame, notes = _deduplicate(frame)
    _check_one_setting(frame)
    _check_input_keys(frame)
    frame, filled = _fill_params(frame)
    return frame, notes + filled
