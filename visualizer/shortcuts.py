"""Keyboard shortcuts that work wherever the focus is.

The Run menu's shortcuts (Space, →, Shift+→, Ctrl+→, Ctrl+R) are application-wide, so they
also reach the app from a floating dock. A number box, a slider or a list would still take
Space and → for itself (a spin box moves its text cursor): ``FocusKeys`` hands those keys to
the shortcuts there. Only while typing in a free text field do Space and → type; buttons keep
Space for clicking them, as everywhere.
"""
from __future__ import annotations

from PyQt5.QtCore import QEvent, QObject, Qt
from PyQt5.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QTextEdit,
)

KEYS = {Qt.Key_Space, Qt.Key_Right}
TAKEN_OVER = (QAbstractSpinBox, QAbstractSlider, QComboBox)  # widgets that lose Space and →


def takes_over(widget) -> bool:
    """True when Space and → go to the shortcuts while ``widget`` has the focus."""
    while widget is not None:
        if isinstance(widget, TAKEN_OVER):
            return True
        if isinstance(widget, (QLineEdit, QTextEdit)) and not isinstance(
                widget.parent(), QAbstractSpinBox):
            return False  # free text: Space and → type
        widget = widget.parent() if isinstance(widget, QLineEdit) else None
    return False


class FocusKeys(QObject):
    """An application event filter: Space and → (with any modifier) are left to the
    shortcuts while a number box, slider or list has the focus."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.ShortcutOverride and event.key() in KEYS \
                and takes_over(QApplication.focusWidget()):
            event.ignore()  # not overridden: the shortcut fires
            return True
        return False


def install(actions) -> FocusKeys:
    """Make ``actions`` (QActions with shortcuts) application-wide and let them through number
    boxes, sliders and lists. Keep the returned filter alive (it is parented to the app)."""
    for action in actions:
        action.setShortcutContext(Qt.ApplicationShortcut)
    app = QApplication.instance()
    keys = app.findChild(FocusKeys)  # one filter for the app, whatever the windows
    if keys is None:
        keys = FocusKeys(app)
        app.installEventFilter(keys)
    return keys
