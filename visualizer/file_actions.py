"""Evaluating and keeping models in the main window.

``attach(window)`` adds the Evaluation tab and File > Open model, Open recent, Save model,
Save model as, Export; ``persist(window)`` (the real launch only, never tests) restores and
saves what the app remembers between launches. Both use only the window's public pieces and
signals and the worker's commands: ``save_state()`` (answered by the window's ``state_ready``
with a copy taken between two steps) and ``load()`` (a validated model file becomes the
training model). The GUI thread never touches the live model.
"""
from __future__ import annotations

import os

from PyQt5.QtCore import QEvent, QObject, QTimer
from PyQt5.QtWidgets import QApplication

from convscope.visualizer.evaluation import EvaluationView
from convscope.visualizer.export import Exports, history_series
from convscope.visualizer.messages import Hyper, RunSettings
from convscope.visualizer.model_files import ModelFiles
from convscope.visualizer.settings import Settings


class FileActions(QObject):
    def __init__(self, window, settings: Settings | None = None):
        super().__init__(window)
        self.window = window
        self.settings = settings or Settings()
        self._waiting: list = []  # callbacks for the worker's next state_ready, in order
        self._opening = None  # the trainer state of a model file being opened
        self.evaluation = EvaluationView(weights_source=self._weights)
        window.add_panel("Evaluation", self.evaluation, "tab")
        self.model_files = ModelFiles(window, self.settings, self._request_state)
        self.exports = Exports(window, self.settings, self._panels, self._history,
                               self._run_settings, self._reveal)

        window.state_ready.connect(self._on_state_ready)
        window.run_started.connect(self._on_run_started)
        window.snapshot_shown.connect(lambda snap: self.evaluation.note_step(snap.step))
        window.epoch_ended.connect(self._on_epoch)
        self.evaluation.probe_requested.connect(
            lambda index, image, label: window.set_probe_index(index))
        self.evaluation.error.connect(window.show_error)
        self.model_files.opened.connect(self.load)
        self.model_files.saved.connect(
            lambda path: window.status.showMessage(f"Saved {path}", 8000))
        self._install_menus()
        window.installEventFilter(self)

    # ---- menus -------------------------------------------------------------------------
    def _install_menus(self) -> None:
        """Open/recent/save and Export go above the File menu's last entry (Quit)."""
        bar = self.window.menuBar()
        menu = next(a.menu() for a in bar.actions() if a.text().replace("&", "") == "File")
        last = menu.actions()[-1] if menu.actions() else None
        if last is not None:
            menu.removeAction(last)
        self.model_files.install_menu(menu)
        menu.addSeparator()
        self.exports.install_menu(menu)
        if last is not None:
            menu.addSeparator()
            menu.addAction(last)

    # ---- evaluation --------------------------------------------------------------------
    def _weights(self):
        """(config, params copies, step) of the newest snapshot, or None."""
        w = self.window
        if w.info is None or w.latest is None:
            return None
        return w.info.config, w.latest.params, w.latest.step

    def _on_run_started(self, info) -> None:
        self.evaluation.set_test_set(info.x_test, info.y_test, info.class_names)
        state, self._opening = self._opening, None
        if state is not None and len(state["order"]) == info.n_train:  # resumed: say where
            m = state["meta"]
            self.window.status.set_values(step=int(m["step"]), epoch=int(m["epoch"]),
                                          samples=int(m["samples_seen"]), lr=float(m["lr"]),
                                          epoch_progress=int(m["cursor"]) / info.n_train)

    def _on_epoch(self, report) -> None:
        """A finished epoch refreshes an evaluation that is on screen."""
        if self.evaluation.isVisible() and self.evaluation.result is not None:
            QTimer.singleShot(100, self.evaluation.evaluate)  # after the epoch's snapshot

    # ---- model files -------------------------------------------------------------------
    def _request_state(self, callback) -> None:
        self._waiting.append(callback)
        self.window.worker.save_state()

    def _on_state_ready(self, run) -> None:
        if self._waiting:
            self._waiting.pop(0)(run)

    def load(self, loaded) -> None:
        """Hand a validated model file to the worker: its architecture, weights, position and
        hyperparameters become the current run (the dataset it names is loaded)."""
        w = self.window
        hyper = loaded.hyperparameters()
        if hyper is not None:
            c = w.controls
            c.lr_spin.setValue(hyper["lr"])
            c.batch_spin.setValue(hyper["batch_size"])
            c.momentum_spin.setValue(hyper["momentum"])
            w.worker.set_hyper(Hyper(**hyper))
        self._opening = loaded.trainer_state
        w.worker.load(RunSettings(**loaded.run_settings()), loaded)
        step = (loaded.trainer_state or {}).get("meta", {}).get("step")
        at = "" if step is None else f" (step {step:,})"
        w.status.showMessage(f"Opened {os.path.basename(loaded.path)}{at}", 8000)

    # ---- export ------------------------------------------------------------------------
    def _panels(self) -> dict:
        return {name: widget for name, widget in self.window.panels.items()
                if name != "Controls"}

    def _reveal(self, title: str):
        """Show a panel's dock or tab so it is laid out at its real size; returns what puts
        the window back as it was."""
        w = self.window
        widget = w.panels[title]
        tab, dock = w.tabs.currentIndex(), w.docks.get(title)
        hidden = dock is not None and not dock.isVisible()
        if dock is not None:
            dock.show()
        for i in range(w.tabs.count()):
            page = w.tabs.widget(i)
            if page is widget or page.isAncestorOf(widget):
                w.tabs.setCurrentIndex(i)
        QApplication.processEvents()

        def undo() -> None:
            w.tabs.setCurrentIndex(tab)
            if hidden:
                dock.hide()
        return undo

    def _history(self) -> dict:
        return history_series({"loss": self.window.loss_panel,
                               "accuracy": self.window.accuracy_panel})

    def _run_settings(self) -> dict:
        w = self.window
        info = w.info
        values = w.status.values
        return {"settings": info.settings if info else w.controls.settings(),
                "hyperparameters": w.controls.hyper(),
                "dataset": info.dataset if info else None,
                "train_size": info.n_train if info else None,
                "config": info.config if info else None,
                "step": values.get("step"), "samples_seen": values.get("samples"),
                "epoch": values.get("epoch"), "test_accuracy": values.get("test"),
                "model_file": self.model_files.current_path}

    # ---- shutdown ----------------------------------------------------------------------
    def eventFilter(self, obj, event):  # noqa: N802 - Qt override
        # getattr: at interpreter exit Qt may still deliver events to a half-torn-down filter
        if event.type() == QEvent.Close and obj is getattr(self, "window", None):
            self.evaluation.cancel()
        return False


def attach(window, settings: Settings | None = None) -> FileActions:
    """Add the Evaluation tab and the model-file and export menus to a MainWindow."""
    return FileActions(window, settings)


# ---- remembered between launches ---------------------------------------------------------
def launch_options(settings: Settings, theme: str | None = None) -> dict:
    """MainWindow keyword arguments from the last launch (``theme`` overrides the saved one)."""
    run = settings.run_settings()
    if run["dataset"] not in ("mini", "mnist", "fashion") and not os.path.isdir(run["dataset"]):
        run["dataset"] = "mini"  # a folder that has gone away
    return {"settings": RunSettings(**run), "hyper": Hyper(**settings.hyperparameters()),
            "theme": theme or settings.theme()}


class _Keeper(QObject):
    def __init__(self, window, settings: Settings):
        super().__init__(window)
        self.window, self.settings = window, settings
        self._shown = False
        settings.restore_window(window)  # geometry now; the dock layout after the first layout
        window.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802 - Qt override
        if obj is not getattr(self, "window", None):
            return False
        if event.type() == QEvent.Show and not self._shown:
            self._shown = True  # the window lays its docks out on a zero timer: go after it
            QTimer.singleShot(0, lambda: QTimer.singleShot(0, self._restore_layout))
        elif event.type() == QEvent.Close:
            self.save()
        return False

    def _restore_layout(self) -> None:
        state = self.settings.qs.value("window/state")
        if state is not None:
            try:
                self.window.restoreState(state)
            except TypeError:
                pass

    def save(self) -> None:
        w, s = self.window, self.settings
        s.save_window(w)
        s.set_theme(w.theme_choice)
        r = w.controls.settings()
        s.set_run_settings(preset=r.preset, filters=r.filters, pool=r.pool, relu=r.relu,
                           dataset=r.dataset, seed=r.seed, convert=r.convert)
        h = w.controls.hyper()
        s.set_hyperparameters(lr=h.lr, batch_size=h.batch_size, momentum=h.momentum)
        s.sync()


def persist(window, settings: Settings) -> None:
    """Restore the window's saved geometry and layout now, save everything when it closes."""
    _Keeper(window, settings)
