"""A view that can leave its tab for a window of its own: closing that window puts it back."""
from __future__ import annotations

from PyQt5.QtCore import QEvent, QObject, Qt
from PyQt5.QtWidgets import QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget


class PopOut(QObject):
    """Moves ``widget`` out of the scroll area of its tab into a window (titled ``title``)
    and back; ``button`` says which way it goes next."""

    OUT, BACK = "Open in its own window", "Put back in the tab"

    def __init__(self, widget: QWidget, button: QPushButton, title: str, name: str):
        super().__init__(widget)
        self.widget, self.button, self.title, self.name = widget, button, title, name
        self._home: QScrollArea | None = None  # the tab's scroll area while in a window
        button.setText(self.OUT)
        button.clicked.connect(self.toggle)
        widget.installEventFilter(self)

    @property
    def popped(self) -> bool:
        return self._home is not None

    def toggle(self) -> None:
        """Out of the tab into a window of its own, or back."""
        if self._home is not None:
            self.put_back()
            return
        w = self.widget
        holder = w.parent()
        while holder is not None and not isinstance(holder, QScrollArea):
            holder = holder.parent()
        if holder is None or holder.widget() is not w:
            return  # not in a tab: already a window
        top = w.window()
        holder.takeWidget()
        note = QWidget()
        box = QVBoxLayout(note)
        back = QPushButton(f"Put the {self.name} back here")
        back.clicked.connect(self.put_back)
        box.addWidget(QLabel(f"The {self.name} is open in its own window."))
        box.addWidget(back)
        box.addStretch(1)
        holder.setWidget(note)
        self._home = holder
        w.setParent(top, Qt.Window)  # closes with the main window
        w.setWindowTitle(self.title)
        self.button.setText(self.BACK)
        w.resize(1280, 800)
        w.show()

    def put_back(self) -> None:
        if self._home is None:
            return
        home, self._home = self._home, None
        home.takeWidget().deleteLater()
        self.widget.setWindowFlags(Qt.Widget)
        home.setWidget(self.widget)
        self.button.setText(self.OUT)
        self.widget.show()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        # a window of its own closes by going back to its tab
        if obj is self.widget and event.type() == QEvent.Close and self._home is not None:
            event.ignore()
            self.put_back()
            return True
        return False
