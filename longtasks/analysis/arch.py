"""The architecture numbers the cost model needs, read from a Hugging Face `config.json`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ARCH_COLUMNS = (
    "n_layers",
    "hidden_size",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
)


@dataclass(frozen=True)
class Arch:
    """A decoder-only transformer as the paper's cost formulas see it (PAPER_NOTES §1.2 symbols:
    N = n_layers, d = hidden_size, h = n_heads, n_kv = n_kv_heads, d_h = head_dim, d_mlp, |V|)."""

    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Arch:
        """From a config dict; multimodal configs (Gemma 3) are read from their `text_config`."""
        if "text_config" in config and "num_hidden_layers" not in config:
            config = config["text_config"]
        try:
            heads = int(config["num_attention_heads"])
            hidden = int(config["hidden_size"])
            head_dim = config.get("head_dim") or hidden // heads
            return cls(
                n_layers=int(config["num_hidden_layers"]),
                hidden_size=hidden,
                n_heads=heads,
                n_kv_heads=int(config.get("num_key_value_heads") or heads),
                head_dim=int(head_dim),
                intermediate_size=int(config["intermediate_size"]),
                vocab_size=int(config["vocab_size"]),
            )
        except KeyError as error:
            raise ValueError(
                f"model config has no {error.args[0]!r}; the cost model needs num_hidden_layers, hidden_size, "
                "num_attention_heads, intermediate_size and vocab_size (a decoder-only Hugging Face config)"
            ) from None

    @classmethod
    def from_file(cls, path: Path) -> Arch:
        return cls.from_config(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Arch:
        """From a results-table row holding the ARCH_COLUMNS."""
        return cls(**{name: int(row[name]) for name in ARCH_COLUMNS})

    def to_dict(self) -> dict[str, int]:
        return asdict(self)
