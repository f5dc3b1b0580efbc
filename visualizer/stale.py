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


def watch_inspector(window) -> StaleNote:
    """A note at the top of the Inspector's side column: it shows the pass of an earlier step
    than the run (and maybe at another learning rate) until the next single-sample step,
    which the note's button takes."""
    note = StaleNote("The Inspector shows", "Trace the next step")
    note.setToolTip("The Inspector shows one traced step; training since then moved the "
                    "weights. The button takes one more single-sample step and traces it.")
    window.inspector.side_layout.insertWidget(0, note)
    note.refresh_requested.connect(lambda: window.worker.step_samples(1))
    return note  # the main window tells it what is shown (set_shown) and live (set_live)
