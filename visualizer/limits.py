"""Input limits that are shown, not only enforced.

A spin box silently refuses a keystroke that would leave its range, and silently puts back
the old value when Enter is pressed on an out-of-range number. ``LimitHints.watch(spin, what,
why)`` makes both visible: the spin box's tooltip names its current range, and a refused value
is answered with one line ("Filters go from 1 to 64 (got 100)") in a tooltip at the box, on
the main window's status bar and through the ``refused`` signal. The range is read when
needed, so a maximum that changes (the batch size follows the training set) stays right.
"""
from __future__ import annotations

from PyQt5.QtCore import QEvent, QObject, QPoint, pyqtSignal
from PyQt5.QtWidgets import QAbstractSpinBox, QMainWindow, QToolTip

SHOWN_MS = 8000  # how long the status bar keeps the reason


def range_text(spin: QAbstractSpinBox) -> str:
    """"from 1 to 64" (plain numbers, thousands separated for whole numbers)."""
    lo, hi = spin.minimum(), spin.maximum()
    if isinstance(lo, int):
        return f"from {lo:,} to {hi:,}"
    return f"from {lo:g} to {hi:g}"


class LimitHints(QObject):
    refused = pyqtSignal(str)  # the one-line reason just shown

    def __init__(self, parent=None):
        super().__init__(parent)
        self.spins: dict[QAbstractSpinBox, tuple[str, str]] = {}
        self._typed: dict[QAbstractSpinBox, str] = {}
        self.last = ""  # the last reason shown

    def watch(self, spin: QAbstractSpinBox, what: str, why: str = "") -> None:
        """Explain ``spin``'s range: ``what`` names it ("Learning rate"), ``why`` (optional)
        says why the range is what it is."""
        self.spins[spin] = (what, why)
        edit = spin.lineEdit()
        edit.inputRejected.connect(lambda s=spin: self._refuse(s, None))
        edit.textEdited.connect(lambda text, s=spin: self._typed.__setitem__(s, text))
        spin.editingFinished.connect(lambda s=spin: self._check_typed(s))
        spin.installEventFilter(self)

    def reason(self, spin: QAbstractSpinBox, typed: str | None = None) -> str:
        what, why = self.spins[spin]
        verb = "go" if what.endswith("s") and not what.endswith("ss") else "goes"
        text = f"{what} {verb} {range_text(spin)}"
        if why:
            text += f" ({why})"
        if typed:
            text += f"; {typed.strip()} is not allowed"
        return text

    def _check_typed(self, spin: QAbstractSpinBox) -> None:
        """After Enter or leaving the box: was the typed number put back because of the range?"""
        typed = self._typed.pop(spin, None)
        if typed is None:
            return
        number = typed.strip()
        for affix in (spin.prefix(), spin.suffix()):
            number = number.replace(affix, "") if affix else number
        try:
            value = float(number.replace(",", ""))
        except ValueError:
            self._refuse(spin, typed)
            return
        if not spin.minimum() <= value <= spin.maximum():
            self._refuse(spin, typed)

    def _refuse(self, spin: QAbstractSpinBox, typed: str | None) -> None:
        self.last = text = self.reason(spin, typed)
        if spin.isVisible():
            QToolTip.showText(spin.mapToGlobal(QPoint(0, spin.height())), text, spin)
        window = spin.window()
        if isinstance(window, QMainWindow):
            window.statusBar().showMessage(text, SHOWN_MS)
        self.refused.emit(text)

    def eventFilter(self, obj, event):  # noqa: N802 - Qt override
        if event.type() == QEvent.ToolTip and obj in self.spins:
            tip = obj.toolTip()
            text = f"{tip}\n{self.reason(obj)}" if tip else self.reason(obj)
            QToolTip.showText(event.globalPos(), text, obj)
            return True
        return False
