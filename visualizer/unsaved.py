"""Closing the window with a network trained since it was last saved asks first: Save,
Discard or Cancel (never when nobody can answer: an offscreen window closes at once)."""
from __future__ import annotations

from PyQt5.QtCore import QEvent, QObject, QTimer
from PyQt5.QtWidgets import QApplication, QMessageBox


class UnsavedGuard(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.ask = QApplication.platformName() != "offscreen"
        self.saved_step: int | None = None  # the step saved (or opened, or started) last
        self.close_when_saved = False  # "Save" was the answer: the save arrives, then close
        window.file_actions.model_files.saved.connect(self._saved)
        window.run_started.connect(self._new_run)
        window.installEventFilter(self)

    def _saved(self, _path) -> None:
        self.saved_step = self.window.latest.step if self.window.latest else None
        if self.close_when_saved:
            self.close_when_saved = False
            QTimer.singleShot(0, self.window.close)

    def _new_run(self, _info) -> None:
        self.saved_step = None  # the run's first state (the Timeline's first) is the baseline

    def unsaved_steps(self) -> int:
        """Training steps since the network was last saved, opened or built."""
        latest = self.window.latest
        base = self.saved_step
        if base is None:
            steps = self.window.worker.timeline.snapshot_steps()
            base = steps[0] if steps else None
        if latest is None or base is None:
            return 0
        return max(0, latest.step - base)

    def confirm_close(self) -> bool:
        """True when the window may close (asking to save a trained network first)."""
        steps = self.unsaved_steps()
        if not steps or not self.ask:
            return True
        answer = QMessageBox.question(
            self.window, "Unsaved network",
            f"The network trained {steps:,} step{'s' if steps != 1 else ''} since it was last "
            f"saved. Save it before closing?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        if answer == QMessageBox.Save:  # the weights come from the worker: close after
            self.close_when_saved = bool(self.window.file_actions.model_files.save())
            return False
        return answer == QMessageBox.Discard

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if obj is self.window and event.type() == QEvent.Close and not self.confirm_close():
            event.ignore()
            return True  # the window stays open, nothing lost
        return False
