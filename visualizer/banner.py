"""The banner above the views: a problem said in a line of text (never a blocking dialog)."""
from __future__ import annotations

from PyQt5.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton


class Banner(QFrame):
    """Hidden until ``show_message``; its ✕ button hides it again."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self.label, 1)
        row.addWidget(close)
        self.hide()

    def show_message(self, message: str) -> None:
        self.label.setText(message)
        self.show()
