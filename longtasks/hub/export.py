"""`longtasks export DIR`: check an output folder's data, rewrite its card from it, then check the folder."""

from __future__ import annotations

from pathlib import Path

from longtasks.hub.card import write_card
from longtasks.hub.folder import CARD_NAME
from longtasks.hub.validate import FolderReport, check_data, check_publishable


def export_folder(out_dir: Path | str) -> FolderReport:
    """Check the data, (re)write `out_dir/README.md` from it and check the folder is publishable. A folder
    whose data fails the checks (unfinished, stray or corrupt shards) is left untouched: a card written from
    it would state wrong numbers (`generate` writes the partial card of an interrupted run itself)."""
    data = check_data(out_dir)
    write_card(out_dir)
    return check_publishable(data)


def export(out_dir: Path | str) -> Path:
    """`export_folder`, returning the card's path."""
    return export_folder(out_dir).out_dir / CARD_NAME
