"""The main window's menus: File > Quit, Run (train, step, reset with their shortcuts, which
work wherever the focus is: ``shortcuts``), View (theme, panels, default layout) and Help (what
every panel shows, the presets, the shortcuts: ``help``). ``file_actions`` adds the model-file
entries."""
from __future__ import annotations

from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QActionGroup

from convscope.visualizer import help as panel_help
from convscope.visualizer import shortcuts

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

        self.run_actions = (self.train_action, self.step_sample_action, self.step_batch_action,
                            self.step_epoch_action, self.reset_action)
        self.focus_keys = shortcuts.install(self.run_actions)  # wherever the focus is

        help_menu = bar.addMenu("&Help")
        self._help = None
        panel_help.add_help_menu(help_menu, self.show_help, panel_help.PANELS)
        help_menu.addAction("Keyboard shortcuts", self.show_shortcuts)

    def _action(self, menu, text: str, shortcut: str, slot) -> QAction:
        action = menu.addAction(text)
        action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        return action

    def show_help(self, name: str, html: str | None = None) -> None:
        """The help window with what panel ``name`` shows (or ``html``), never modal."""
        if self._help is None:
            self._help = panel_help.HelpDialog(self.window)
        self._help.show_text(name, html or panel_help.text_of(name))

    def show_shortcuts(self) -> None:
        self.show_help("Keyboard shortcuts", panel_help.shortcuts_html(self.run_actions))

    def check_theme(self, choice: str) -> None:
        if choice in self.theme_actions:
            self.theme_actions[choice].setChecked(True)
