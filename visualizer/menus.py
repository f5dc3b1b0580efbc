"""The main window's menus: File > Quit, Run (train, step, reset with their shortcuts), View
(theme, panels, default layout) and Help. ``file_actions`` adds the model-file entries."""
from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QActionGroup, QMessageBox

THEMES = (("system", "Follow the system"), ("dark", "Dark"), ("light", "Light"))


class Menus:
    """Builds the menu bar of ``window`` (a MainWindow: its worker may come later)."""

    def __init__(self, window):
        self.window = window
        bar = window.menuBar()
        file_menu = bar.addMenu("&File")
        quit_action = file_menu.addAction("&Quit")
        quit_action.setShortcut(QKeySequence.Quit)
        quit_action.triggered.connect(window.close)

        run = bar.addMenu("&Run")
        self.train_action = self._action(run, "Train / Pause", "Space",
                                         lambda: window.worker.toggle())
        self.step_sample_action = self._action(run, "Step one sample", "Right",
                                               lambda: window.worker.step_samples(1))
        self.step_batch_action = self._action(run, "Step one batch", "Shift+Right",
                                              lambda: window.worker.step_batch())
        self.step_epoch_action = self._action(run, "Step one epoch", "Ctrl+Right",
                                              lambda: window.worker.step_epoch())
        run.addSeparator()
        self.reset_action = self._action(run, "Reset", "Ctrl+R", lambda: window.reset())

        view = bar.addMenu("&View")
        theme_menu = view.addMenu("Theme")
        group = QActionGroup(window)
        self.theme_actions = {}
        for key, text in THEMES:
            action = theme_menu.addAction(text)
            action.setCheckable(True)
            action.setActionGroup(group)
            action.triggered.connect(lambda _, k=key: window.set_theme(k))
            self.theme_actions[key] = action
        self.panels_menu = view.addMenu("Panels")
        view.addAction("Restore the default layout", window.restore_layout)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction("Keyboard shortcuts", self._show_shortcuts)

    def _action(self, menu, text: str, shortcut: str, slot) -> QAction:
        action = menu.addAction(text)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.WindowShortcut)
        action.triggered.connect(slot)
        return action

    def _show_shortcuts(self) -> None:
        lines = [f"{a.text()}: {a.shortcut().toString()}" for a in
                 (self.train_action, self.step_sample_action, self.step_batch_action,
                  self.step_epoch_action, self.reset_action)]
        QMessageBox.information(self.window, "Keyboard shortcuts", "\n".join(lines))

    def check_theme(self, choice: str) -> None:
        if choice in self.theme_actions:
            self.theme_actions[choice].setChecked(True)
