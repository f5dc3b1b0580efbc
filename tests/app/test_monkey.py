"""A seeded random walk through the real main window.

Hundreds of actions drawn from everything a person can do: every button, every spin box at
its extremes (or typed into), every combo choice, sliders, canvas strokes, hovering and
clicking the plots, every menu action, resizing, switching tabs, floating docks, Reset while
training. File and message dialogs are replaced by functions that answer at once (good files,
bad files, or Cancel). The app must raise nothing, report only the errors its input deserves,
leave no thread running, and still train afterwards. Divergence (a huge learning rate), its
rollback, Timeline resumes and forks are among the actions, and after every action the curves
must hold at least the points they held before (going back dims them, never removes them).
"""
from __future__ import annotations

import gc
import os
import random
import traceback

import numpy as np
import pytest
from PIL import Image
from PyQt5.QtCore import QCoreApplication, QEvent, QPoint, QPointF, Qt, QTimer
from PyQt5.QtGui import QMouseEvent
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QGraphicsView,
    QMessageBox,
    QSlider,
    QSpinBox,
)

from convscope.engine.data.datasets import load_dir, load_mini
from convscope.engine.data.idx import DataError, write_idx
from convscope.engine.files.checkpoint import save_model
from convscope.engine.net.model import Model, build_config
from convscope.visualizer import dialogs
from convscope.visualizer.curves import MAX_BRANCHES
from convscope.visualizer.main_window import MainWindow
from convscope.visualizer.messages import Hyper, RunSettings

SEED = int(os.environ.get("CONVSCOPE_MONKEY_SEED", "20240607"))
ACTIONS = 520
TIMEOUT = 30_000  # ms

# what the app may say about the bad input it is given on purpose
EXPECTED_WORKER = ("Training diverged", "Cannot use this dataset", "Cannot use the dataset",
                   "Opened the weights only", "Learning rate ")  # the last: a schedule off
EXPECTED_EVALUATION = ("there are no weights to evaluate yet",
                       "this dataset has no test split")


# ---- the files the dialogs hand out ---------------------------------------------------------
@pytest.fixture
def files(tmp_path, mini):
    good = tmp_path / "small-mnist"
    good.mkdir()
    write_idx(good / "train-images-idx3-ubyte", np.ascontiguousarray(mini.x_train[:600]))
    write_idx(good / "train-labels-idx1-ubyte", np.ascontiguousarray(mini.y_train[:600]))
    write_idx(good / "t10k-images-idx3-ubyte", np.ascontiguousarray(mini.x_test[:100]))
    write_idx(good / "t10k-labels-idx1-ubyte", np.ascontiguousarray(mini.y_test[:100]))
    bad = tmp_path / "bad-folder"
    bad.mkdir()
    (bad / "train-images-idx3-ubyte").write_text("not IDX")
    model = tmp_path / "good.npz"
    save_model(model, Model(build_config("seed"), 3), None, {"dataset": "mini"})
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(model.read_bytes()[:300])
    gone = tmp_path / "gone.npz"
    save_model(gone, Model(build_config("deep", filters=4), 1), None,
               {"dataset": str(tmp_path / "nowhere")})
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    digit = tmp_path / "digit.png"
    Image.fromarray(255 - mini.x_test[3]).resize((90, 90)).save(digit)
    fake_png = tmp_path / "fake.png"
    fake_png.write_text("no pixels")
    out = tmp_path / "out"
    out.mkdir()
    return {"folders": [str(good), str(bad), ""],
            "models": [str(model), str(truncated), str(gone), str(text), None],
            "images": [str(digit), str(fake_png), ""],
            "out": out, "good_folder": str(good)}


def offline_loader(good_folder: str):
    def load(spec: str):
        if spec == "mini":
            return load_mini()
        if os.path.isdir(spec):
            return load_dir(spec)
        raise DataError(f"{spec}: no network in this test")
    return load


@pytest.fixture
def patched_dialogs(monkeypatch, files):
    """Every dialog answers at once, with a seeded choice of good and bad answers."""
    rng = random.Random(SEED + 1)
    shown = []
    saves = iter(range(10**6))

    def save_path(parent, title, start, filters):
        ext = os.path.splitext(start)[1] or ".npz"
        where = rng.choice([files["out"], files["out"], files["out"] / "missing-folder", None])
        return None if where is None else str(where / f"saved-{next(saves)}{ext}")

    def open_path(parent, title, start, filters):
        wanted = files["images"] if "Images" in filters else files["models"]
        return rng.choice(wanted) or None

    monkeypatch.setattr(dialogs, "ask_open_path", open_path)
    monkeypatch.setattr(dialogs, "ask_save_path", save_path)
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, text: shown.append(text))
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: (rng.choice(files["images"]), ""))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: ("", ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        lambda *a, **k: rng.choice(files["folders"]))
    for name in ("information", "warning", "critical", "question", "about"):
        monkeypatch.setattr(QMessageBox, name, lambda *a, **k: QMessageBox.Ok)
    return shown


# ---- input helpers --------------------------------------------------------------------------
def mouse(widget, kind, x, y, button=Qt.LeftButton):
    held = Qt.NoButton if kind == QEvent.MouseButtonRelease else button
    changed = Qt.NoButton if kind == QEvent.MouseMove else button
    QApplication.sendEvent(widget, QMouseEvent(kind, QPointF(x, y), changed, held,
                                               Qt.NoModifier))


def alive(widget) -> bool:
    try:
        widget.objectName()
        return True
    except RuntimeError:  # deleted by the app (a rebuilt panel)
        return False


class Monkey:
    """The actions, each a method taking nothing; ``rng`` decides every detail."""

    def __init__(self, window: MainWindow, qtbot, rng: random.Random):
        self.w, self.qtbot, self.rng = window, qtbot, rng
        self.log: list[str] = []

    def widgets(self, kind):
        """Enabled widgets of ``kind``: those on screen, or half the time any of them (the
        pages of other tabs too)."""
        found = [x for x in self.w.findChildren(kind) if alive(x) and x.isEnabled()]
        shown = [x for x in found if x.isVisible()]
        return shown if shown and self.rng.random() < 0.5 else found

    def pick(self, kind):
        found = self.widgets(kind)
        return self.rng.choice(found) if found else None

    # -- buttons, spin boxes, combos, sliders
    def click_button(self):
        b = self.pick(QAbstractButton)
        # a button that pops a menu up (the menu bar's overflow arrow) blocks in its own
        # event loop like a modal dialog; its actions are triggered by menu_action
        if b is not None and getattr(b, "menu", lambda: None)() is None \
                and b.objectName() != "qt_menubar_ext_button":
            self.log.append(f"click {b.text() or b.objectName() or type(b).__name__}")
            b.click()

    def spin_extreme(self):
        s = self.pick(QAbstractSpinBox)
        if isinstance(s, (QSpinBox, QDoubleSpinBox)):
            value = self.rng.choice([s.minimum(), s.maximum(), s.minimum(), s.maximum(),
                                     self.rng.uniform(s.minimum(), s.maximum())])
            value = int(value) if isinstance(s, QSpinBox) else value
            self.log.append(f"spin {s.objectName() or s.toolTip()[:20]} = {value}")
            s.setValue(value)

    def spin_typed(self):
        s = self.pick(QAbstractSpinBox)
        if s is None:
            return
        text = self.rng.choice(["0", "-1", "1e9", "99999", "abc", "", "0.5", "10", "1e-7",
                                "nan", "3"])
        self.log.append(f"type {text!r}")
        s.setFocus()
        s.lineEdit().selectAll()
        QTest.keyClicks(s, text)
        QTest.keyClick(s, Qt.Key_Return)

    def combo_choice(self):
        c = self.pick(QComboBox)
        if c is not None and c.count():
            i = self.rng.randrange(c.count())
            self.log.append(f"combo {c.itemText(i)}")
            c.setCurrentIndex(i)
            c.activated.emit(i)

    def slider(self):
        s = self.pick(QSlider)
        if s is not None:
            s.setValue(self.rng.choice([s.minimum(), s.maximum(),
                                        self.rng.randint(s.minimum(), s.maximum())]))

    # -- the canvas and the plots
    def stroke(self):
        canvas = self.w.draw_panel.canvas
        w, h = max(canvas.width(), 20), max(canvas.height(), 20)
        points = [(self.rng.uniform(0, w), self.rng.uniform(0, h))
                  for _ in range(self.rng.randint(1, 12))]
        self.log.append(f"stroke of {len(points)} points")
        mouse(canvas, QEvent.MouseButtonPress, *points[0])
        for p in points[1:]:
            mouse(canvas, QEvent.MouseMove, *p)
        mouse(canvas, QEvent.MouseButtonRelease, *points[-1])

    def plot_mouse(self):
        view = self.pick(QGraphicsView)
        if view is None:
            return
        port = view.viewport()
        x, y = self.rng.randrange(max(1, port.width())), self.rng.randrange(max(1, port.height()))
        QTest.mouseMove(port, QPoint(x, y))
        if self.rng.random() < 0.5:
            QTest.mouseClick(port, Qt.LeftButton, Qt.NoModifier, QPoint(x, y))

    # -- the window
    def menu_action(self):
        actions = []

        def walk(menu):
            menu.aboutToShow.emit()  # menus that fill themselves (recent files, export)
            for a in menu.actions():
                if a.menu() is not None:
                    walk(a.menu())
                elif not a.isSeparator() and a.isEnabled() and a.text().replace("&", "") \
                        != "Quit":
                    actions.append(a)
        for top in self.w.menuBar().actions():
            if top.menu() is not None:
                walk(top.menu())
        a = self.rng.choice(actions)
        self.log.append(f"menu {a.text()}")
        a.trigger()

    def resize(self):
        size = (self.rng.randint(500, 1920), self.rng.randint(400, 1200))
        self.log.append(f"resize {size}")
        self.w.resize(*size)

    def tab(self):
        self.w.tabs.setCurrentIndex(self.rng.randrange(self.w.tabs.count()))

    def dock(self):
        d = self.rng.choice(self.w.findChildren(QDockWidget))
        self.rng.choice([lambda: d.setFloating(not d.isFloating()),
                         lambda: d.setVisible(not d.isVisible())])()

    def model_file(self):
        files = self.w.file_actions.model_files
        self.rng.choice([files.open_dialog, files.save_as, files.save])()
        self.log.append("open or save a model file")

    def inspect(self):
        self.w.worker.step_samples(1)
        self.qtbot.wait(self.rng.randint(0, 40))
        if self.w.inspector.gradcheck.button.isEnabled():
            self.log.append("gradient check")
            self.w.inspector.gradcheck.button.click()

    def train_then_reset(self):
        self.log.append("train, then reset while training")
        if not self.w.running:
            self.w.controls.train_button.click()
        self.qtbot.wait(self.rng.randint(0, 60))
        self.w.controls.reset_button.click()

    # -- going back: divergence and rollback, Timeline resume and fork
    def diverge(self):
        self.log.append("diverge at a huge learning rate")
        c = self.w.controls
        c.lr_spin.setValue(self.rng.choice([1.0, 5.0, 10.0]))
        if not self.w.running:
            c.train_button.click()
        self.qtbot.wait(self.rng.randint(20, 200))
        self.w.worker.pause()
        c.lr_spin.setValue(0.01)

    def resume_fork(self):
        panel = self.w.timeline_panel
        panel.refresh()
        if not panel.steps:
            return
        step = self.rng.choice(panel.steps)
        if panel.show_step(step) is None:
            return
        lr = self.rng.choice([None, 0.02, 0.002])  # None: the moment's own (a replay)
        if lr is not None:
            panel.lr_spin.setValue(lr)
        self.log.append(f"resume from step {step} with lr {lr or 'as it was'}")
        panel.resume_button.click()
        self.qtbot.wait(self.rng.randint(0, 60))

    def key(self):
        k = self.rng.choice([Qt.Key_Space, Qt.Key_Right, Qt.Key_Left, Qt.Key_Escape])
        QTest.keyClick(self.w, k, self.rng.choice([Qt.NoModifier, Qt.ShiftModifier]))

    def wait(self):
        self.qtbot.wait(self.rng.randint(5, 80))

    def all(self) -> list:
        return [self.click_button, self.click_button, self.click_button, self.spin_extreme,
                self.spin_extreme, self.spin_typed, self.combo_choice, self.combo_choice,
                self.slider, self.stroke, self.plot_mouse, self.menu_action, self.menu_action,
                self.resize, self.tab, self.dock, self.train_then_reset, self.key, self.wait,
                self.model_file, self.inspect, self.diverge, self.resume_fork]


class CurveRecord:
    """Checks that no action removes points from the curves: within one run the points of
    the kept curves (live and dimmed) never drop, except when a history merges neighbouring
    pairs to stay bounded (its stride doubles)."""

    def __init__(self, window):
        self.w = window
        self.last = None  # (run, strides, points)
        self.losses: list[str] = []
        self.forks = 0

    def state(self):
        panels = (self.w.loss_panel, self.w.accuracy_panel)
        strides = tuple(p.histories[k].stride for p in panels for k in p.ghost_keys)
        points = [sum(len(p.histories[k]) for k in p.ghost_keys) + p.ghost_count()
                  for p in panels]
        self.forks = max(self.forks, sum(len(p.branches) for p in panels))
        return self.w.info, strides, points, sum(len(p.branches) for p in panels)

    def check(self, what: str) -> None:
        now = self.state()
        last, self.last = self.last, now
        full = any(len(p.branches) == MAX_BRANCHES for p in (self.w.loss_panel,
                                                             self.w.accuracy_panel))
        if last is None or last[0] is not now[0] or last[1] != now[1] or full:
            return  # a new run, merged pairs, or the oldest of many branches let go
        for before, after in zip(last[2], now[2], strict=True):
            if after < before:
                self.losses.append(f"{what}: {before} -> {after} points")


@pytest.mark.slow
def test_random_actions_leave_the_app_working(qtbot, tmp_path, monkeypatch, files,
                                              patched_dialogs, capfd):
    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(tmp_path / "settings.ini"))
    window = MainWindow(hyper=Hyper(lr=0.01, batch_size=8), theme="dark",
                        loader=offline_loader(files["good_folder"]))
    worker_errors, eval_errors, other_errors, gradchecks = [], [], [], []
    window.worker.error.connect(worker_errors.append)
    window.file_actions.evaluation.error.connect(eval_errors.append)
    window.draw_panel.error.connect(other_errors.append)
    window.inspector.gradcheck.finished.connect(gradchecks.append)
    rng = random.Random(SEED)
    monkey = Monkey(window, qtbot, rng)
    try:
        window.show()
        qtbot.waitUntil(lambda: window.info is not None, timeout=TIMEOUT)
        actions = monkey.all()
        plan = rng.sample(actions, len(actions))  # every kind at least once, then at random
        plan += [rng.choice(actions) for _ in range(ACTIONS - len(plan))]
        record = CurveRecord(window)
        with qtbot.captureExceptions() as exceptions:
            for i, action in enumerate(plan):
                action()
                QApplication.processEvents()
                if i % 25 == 0:
                    qtbot.wait(20)
                record.check(monkey.log[-1] if monkey.log else action.__name__)
            assert len(plan) >= 500
            assert not record.losses, record.losses
            assert record.forks > 0  # going back happened, and left branches to see

            # still responsive: a timer fires, and a sane run trains
            ticked = []
            QTimer.singleShot(0, lambda: ticked.append(1))
            qtbot.waitUntil(lambda: bool(ticked), timeout=TIMEOUT)
            for d in window.findChildren(QDockWidget):
                d.setFloating(False)
            window.restore_layout()
            c = window.controls
            c.lr_spin.setValue(0.01)
            c.batch_spin.setValue(8)
            c.momentum_spin.setValue(0.0)
            window.worker.pause()
            with qtbot.waitSignal(window.run_started, timeout=TIMEOUT):
                window.reset(RunSettings())
            qtbot.waitUntil(lambda: window.latest is not None, timeout=TIMEOUT)
            window.worker.steps(20)
            qtbot.waitUntil(lambda: window.latest is not None and window.latest.step == 20,
                            timeout=TIMEOUT)
            assert np.isfinite(window.latest.params["dense1.W"]).all()
        assert not exceptions, "\n".join(
            "".join(traceback.format_exception(*e)) for e in exceptions)
    finally:
        window.close()
        window.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
        gc.collect()
    assert window.thread.isFinished()

    unexpected = [m for m in worker_errors if not m.startswith(EXPECTED_WORKER)]
    assert not unexpected, unexpected
    assert all(m.startswith(EXPECTED_EVALUATION) for m in eval_errors), eval_errors
    assert all("error" not in report for report in gradchecks), gradchecks
    for message in worker_errors + eval_errors + other_errors + patched_dialogs:
        assert message.strip() and "\n" not in message.strip(), message  # one line each
    err = capfd.readouterr().err
    assert "Traceback" not in err and "QThread" not in err, err
