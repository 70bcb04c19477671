"""Hugging Face Hub publishing: the dataset card, offline validation/export, and the push."""

from longtasks.hub.card import render_card, write_card
from longtasks.hub.export import export
from longtasks.hub.folder import DatasetFolderError
from longtasks.hub.push import HubPushError, PlannedFile, PushPlan, push
from longtasks.hub.validate import FolderReport, validate_folder

__all__ = [
    "DatasetFolderError",
    "FolderReport",
    "HubPushError",
    "PlannedFile",
    "PushPlan",
    "export",
    "push",
    "render_card",
    "validate_folder",
    "write_card",
]
