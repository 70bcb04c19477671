"""Hugging Face Hub publishing: the dataset card, offline validation/export, and the push."""

from longtasks.hub.card import render_card, write_card

__all__ = ["render_card", "write_card"]
