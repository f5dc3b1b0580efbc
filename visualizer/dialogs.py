"""The few modal dialogs of the file menus, in one place so tests can replace them.

Tests monkeypatch these functions (``monkeypatch.setattr(dialogs, "show_error", ...)``): the
callers always look them up through this module, never import them by name.
"""
from __future__ import annotations

from PyQt5.QtWidgets import QFileDialog, QMessageBox, QWidget

MODEL_FILTER = "ConvScope models (*.npz);;All files (*)"


def ask_open_path(parent: QWidget | None, title: str, start: str, filters: str) -> str | None:
    """A file chosen to open, or None when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, title, start, filters)
    return path or None


def ask_save_path(parent: QWidget | None, title: str, start: str, filters: str) -> str | None:
    """A file name chosen to save to, or None when cancelled."""
    path, _ = QFileDialog.getSaveFileName(parent, title, start, filters)
    return path or None


def ask_folder(parent: QWidget | None, title: str) -> str | None:
    """A folder chosen, or None when cancelled."""
    return QFileDialog.getExistingDirectory(parent, title) or None


def show_error(parent: QWidget | None, title: str, message: str) -> None:
    QMessageBox.critical(parent, title, message)

