"""CLI commands `longtasks export DIR` and `longtasks push DIR --repo-id OWNER/NAME`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from longtasks.commands.errors import fail


def _size(num_bytes: int) -> str:
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


DirArg = Annotated[
    Path,
    typer.Argument(
        metavar="DIR", help="Output folder written by `longtasks generate --out DIR`.", show_default=False
    ),
]


def export_command(out_dir: DirArg) -> None:
    """Rewrite DIR/README.md (the dataset card) from longtasks.json and the parquet files, then check
    that every config loads with datasets.load_dataset(DIR, config)."""
    from longtasks.hub.export import export_folder
    from longtasks.hub.folder import CARD_NAME, DatasetFolderError

    try:
        report = export_folder(out_dir)
    except DatasetFolderError as error:
        fail(str(error))
    typer.echo(f"wrote {report.out_dir / CARD_NAME}")
    typer.echo(f"{len(report.configs)} config(s), {report.rows} rows, all load with datasets.load_dataset")


def push_command(
    out_dir: DirArg,
    repo_id: Annotated[
        str, typer.Option("--repo-id", help="Target dataset repo, OWNER/NAME.", show_default=False)
    ],
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate offline and list what would be uploaded; no network.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Hub token with write access. Default: HF_TOKEN, then the `hf auth login` cache.",
            show_default=False,
        ),
    ] = None,
    allow_unlicensed_data: Annotated[
        bool,
        typer.Option(
            "--allow-unlicensed-data",
            help="Publish source text whose licence is unstated upstream (e.g. TOEFL-QA); only if you may.",
        ),
    ] = False,
) -> None:
    """Upload DIR (README.md, longtasks.json, data/) to the Hugging Face Hub as a dataset repo."""
    from longtasks.hub.folder import DatasetFolderError
    from longtasks.hub.push import HubPushError, push

    try:
        plan = push(
            out_dir,
            repo_id,
            private=private,
            token=token,
            dry_run=dry_run,
            allow_unlicensed=allow_unlicensed_data,
        )
    except (DatasetFolderError, ValueError, HubPushError) as error:
        fail(str(error))
    visibility = "private" if plan.private else "public"
    header = "dry run, nothing uploaded: would upload" if plan.dry_run else "uploaded"
    typer.echo(
        f"{header} {len(plan.files)} file(s), {_size(plan.total_bytes)}, to dataset repo {plan.repo_id} "
        f"({visibility} if created; an existing repo keeps its visibility)"
    )
    typer.echo(f"{len(plan.configs)} config(s), {plan.rows} rows: {', '.join(plan.configs)}")
    for item in plan.files:
        typer.echo(f"  {_size(item.size):>10}  {item.path_in_repo}")
    if plan.dry_run:
        missing = "none found (pass --token or set HF_TOKEN)"
        typer.echo(f"token: {f'from {plan.token_source}' if plan.token_source else missing}")
    else:
        if plan.deleted:
            typer.echo(f"removed {len(plan.deleted)} stale file(s) under data/ from the repo")
        typer.echo(f"done: {plan.url}")


def register(app: typer.Typer) -> None:
    """Add `export` and `push` to the `longtasks` CLI."""
    app.command("export")(export_command)
    app.command("push")(push_command)
