"""A note above a view that shows an older state than the run: it says which, and offers to
bring the view up to date (``refresh_requested``)."""
from __future__ import annotations

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton


def stale_text(what: str, shown: dict, live: dict) -> str | None:
    """What the note says, or None when the view is up to date. ``shown`` and ``live``:
    {"step": int, "lr": float} of the state shown and of the run now."""
    if shown.get("step") is None or live.get("step") is None or live["step"] <= shown["step"]:
        return None
    lr = ""
    if shown.get("lr") is not None and live.get("lr") is not None \
            and abs(shown["lr"] - live["lr"]) > 1e-12 * max(1.0, live["lr"]):
        lr = f" (lr {shown['lr']:g}; now {live['lr']:g})"
    return (f"{what} step {shown['step']:,}{lr}; the run is at step {live['step']:,} "
            f"now.")


class StaleNote(QFrame):
    refresh_requested = pyqtSignal()

    def __init__(self, what: str = "Showing", action: str = "Refresh", parent=None):
        super().__init__(parent)
        self.setObjectName("stale_note")
        self.what = what
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.button = QPushButton(action)
        self.button.clicked.connect(self.refresh_requested.emit)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 3, 6, 3)
        row.addWidget(self.label, 1)
        row.addWidget(self.button)
        self.shown: dict = {}
        self.live: dict = {}
        self.hide()

    def set_shown(self, step: int | None, lr: float | None = None) -> None:
        """The state the view shows."""
        self.shown = {"step": step, "lr": lr}
        self._update()

    def set_live(self, step: int | None, lr: float | None = None) -> None:
        """Where the run is now."""
        self.live = {"step": step, "lr": lr}
        self._update()

    def _update(self) -> None:
        text = stale_text(self.what, self.shown, self.live)
        if text is not None and text != self.label.text():
            self.label.setText(text)
        self.setVisible(text is not None)
