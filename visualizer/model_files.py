"""File > Open, Save, Save As and Open Recent for model files (``engine.checkpoint``'s .npz).

``ModelFiles`` never touches the training worker's live model. Saving writes a ``SavedRun``:
a private copy of the model and ``Trainer.get_state()`` taken by the worker between two steps
(``TrainWorker`` sends it on request). Opening validates the whole file first
(``load_model`` raises ``CheckpointError``); a refused file is reported in a dialog and changes
nothing, an accepted one is emitted as ``opened(LoadedModel)`` for the main window to hand to
the worker. Dialogs go through ``visualizer.dialogs`` so tests can replace them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from PyQt5.QtCore import QObject, pyqtSignal
from PyQt5.QtWidgets import QAction, QMenu

from convscope.engine.data.folders import CONVERSIONS
from convscope.engine.files.checkpoint import CheckpointError, load_model, save_model
from convscope.engine.files.facts import run_facts
from convscope.engine.net.model import Model
from convscope.visualizer import dialogs


@dataclass(frozen=True)
class SavedRun:
    """What a save writes: a model the GUI may own, the trainer state (or None) and extra
    facts (dataset, class names, test accuracy...; the CLI's keys)."""
    model: Model
    trainer_state: dict | None
    extra: dict


@dataclass(frozen=True)
class LoadedModel:
    """A validated model file: the model, its trainer state (or None) and extra facts."""
    model: Model
    trainer_state: dict | None
    extra: dict
    path: str

    def run_settings(self) -> dict:
        """Keyword arguments of ``worker.RunSettings`` that rebuild this run."""
        cfg, meta = self.model.config, (self.trainer_state or {}).get("meta", {})
        convert = self.extra.get("convert")  # a folder's conversion: the model's, else mnist
        return {"preset": cfg.get("preset", "seed"), "filters": cfg.get("filters"),
                "pool": cfg.get("pool", "max"), "relu": cfg.get("relu"),
                "dataset": str(self.extra.get("dataset", "mini")),
                "seed": int(meta.get("seed", self.model.seed)),
                "convert": convert if convert in CONVERSIONS else "mnist"}

    def hyperparameters(self) -> dict | None:
        """Keyword arguments of ``worker.Hyper`` saved with the trainer state, or None."""
        meta = (self.trainer_state or {}).get("meta")
        if not meta:
            return None
        return {"lr": float(meta["lr"]), "batch_size": int(meta["batch_size"]),
                "momentum": float(meta["momentum"])}


def read_model_file(path: str) -> LoadedModel:
    """Load and validate; raises CheckpointError with a one-line reason."""
    try:
        model, state, extra = load_model(path)
    except CheckpointError:
        raise
    except Exception as e:  # anything unforeseen in a hostile file is still a refusal
        raise CheckpointError(f"{path} is not a usable model file ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:120]})") from None
    return LoadedModel(model, state, extra, os.path.abspath(path))


def saved_run_of(trainer, dataset_spec: str, data=None, convert: str = "mnist") -> SavedRun:
    """A copy of ``trainer``'s run to save (called on the worker thread, between steps).
    ``data``: the engine Dataset it trains on, for its class names (digits if None);
    ``convert``: how a folder's pictures were converted (kept as the train command keeps it)."""
    names = data.class_names if data is not None else range(10)
    extra = run_facts(trainer, dataset_spec, names)
    extra["convert"] = convert
    return SavedRun(trainer.model.copy(), trainer.get_state(), extra)


def restore_position(trainer, state: dict | None) -> str | None:
    """Resume ``trainer`` from a saved state when it fits its training set. Returns None, or a
    sentence saying why only the weights were kept (the model already holds them)."""
    if state is None:
        return None
    try:
        trainer.set_state(state)
    except (ValueError, KeyError, TypeError) as e:
        return (f"Opened the weights only: the training position could not be restored "
                f"({e}); training starts a new epoch from these weights.")
    return None


def write_model_file(path: str, run: SavedRun) -> None:
    """Atomic save (engine.checkpoint); raises CheckpointError or OSError."""
    save_model(path, run.model, run.trainer_state, run.extra)


class ModelFiles(QObject):
    """The model-file actions of the File menu.

    ``request_state(callback)`` must arrange for ``callback(SavedRun)`` to be called on the GUI
    thread with a copy of the current run (or ``callback(None)`` when there is none); the main
    window implements it with the worker's state request.
    """
    opened = pyqtSignal(object)  # LoadedModel
    saved = pyqtSignal(str)  # path
    error = pyqtSignal(str)  # one-line message, also shown in a dialog

    def __init__(self, parent_widget, settings, request_state=None):
        super().__init__(parent_widget)
        self.parent_widget = parent_widget
        self.settings = settings
        self.request_state = request_state
        self.current_path: str | None = None
        self.recent_menu: QMenu | None = None

    # ---- opening -------------------------------------------------------------------------
    def open_dialog(self) -> bool:
        path = dialogs.ask_open_path(self.parent_widget, "Open model", self.settings.last_dir(),
                                     dialogs.MODEL_FILTER)
        return self.open_path(path) if path else False

    def open_path(self, path: str) -> bool:
        """Validate ``path`` and emit ``opened``; on refusal show why and change nothing."""
        try:
            loaded = read_model_file(path)
        except CheckpointError as e:
            self._fail("Cannot open model", str(e))
            return False
        self.current_path = loaded.path
        self._remember(loaded.path)
        self.opened.emit(loaded)
        return True

    # ---- saving --------------------------------------------------------------------------
    def save(self) -> bool:
        """Save to the current file, or ask for one."""
        if self.current_path is None:
            return self.save_as()
        return self.save_to(self.current_path)

    def save_as(self) -> bool:
        start = self.current_path or os.path.join(self.settings.last_dir(), "model.npz")
        path = dialogs.ask_save_path(self.parent_widget, "Save model as", start,
                                     dialogs.MODEL_FILTER)
        if not path:
            return False
        if not os.path.splitext(path)[1]:
            path += ".npz"
        return self.save_to(path)

    def save_to(self, path: str) -> bool:
        """Ask for a copy of the current run and write it to ``path`` when it arrives.
        Returns False when there is nothing to save or no way to get it."""
        if self.request_state is None:
            self._fail("Cannot save model", "there is no model to save yet")
            return False
        self.request_state(lambda run: self.write(path, run))
        return True

    def write(self, path: str, run: SavedRun | None) -> bool:
        """Write ``run`` to ``path`` atomically; report failures in a dialog."""
        if run is None:
            self._fail("Cannot save model", "there is no model to save yet")
            return False
        try:
            write_model_file(path, run)
        except (CheckpointError, OSError) as e:
            reason = str(e) if isinstance(e, CheckpointError) or e.errno is None else \
                f"cannot save {path}: {e.strerror or e}"  # engine errors are already worded
            self._fail("Cannot save model", reason)
            return False
        self.current_path = os.path.abspath(path)
        self._remember(self.current_path)
        self.saved.emit(self.current_path)
        return True

    # ---- menu ----------------------------------------------------------------------------
    def install_menu(self, menu: QMenu) -> dict[str, QAction]:
        """Add Open..., Open Recent, Save, Save As... to ``menu`` (the File menu)."""
        actions = {
            "open": menu.addAction("&Open model...", self.open_dialog),
            "recent": None,
            "save": menu.addAction("&Save model", self.save),
            "save_as": menu.addAction("Save model &as...", self.save_as),
        }
        actions["open"].setShortcut("Ctrl+O")
        actions["save"].setShortcut("Ctrl+S")
        actions["save_as"].setShortcut("Ctrl+Shift+S")
        self.recent_menu = QMenu("Open &recent", menu)
        menu.insertMenu(actions["save"], self.recent_menu)
        actions["recent"] = self.recent_menu.menuAction()
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._fill_recent()
        return actions

    def _fill_recent(self) -> None:
        menu = self.recent_menu
        if menu is None:
            return
        menu.clear()
        paths = self.settings.recent_files()
        for i, path in enumerate(paths, 1):
            action = menu.addAction(f"&{i} {os.path.basename(path)}")
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))
        if paths:
            menu.addSeparator()
            menu.addAction("Clear list", self._clear_recent)
        else:
            menu.addAction("(no recent models)").setEnabled(False)

    def _clear_recent(self) -> None:
        self.settings.clear_recent_files()
        self._fill_recent()

    def _remember(self, path: str) -> None:
        self.settings.add_recent_file(path)
        self._fill_recent()

    def _fail(self, title: str, message: str) -> None:
        self.error.emit(message)
        dialogs.show_error(self.parent_widget, title, message)
