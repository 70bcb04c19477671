"""`longtasks export DIR`: rewrite the card of an existing output folder, then validate the folder."""

from __future__ import annotations

from pathlib import Path

from longtasks.hub.card import write_card
from longtasks.hub.validate import validate_folder


def export(out_dir: Path | str) -> Path:
    """(Re)write `out_dir/README.md` and check the folder is publishable; return the card's path.

    The card is written even when validation then fails (it lists only finished configs, so a partial
    folder stays loadable); the error says what is still wrong.
    """
    path = write_card(out_dir)
    validate_folder(out_dir)
    return path
