"""Fixtures of the app's tests: the real main window, the embedded data, settings of their
own, dialogs that answer at once and widgets deleted for good after each test."""
from __future__ import annotations

import gc

import pytest


def _delete_for_good(widgets: list) -> None:
    """Close and delete widgets now, then collect the garbage, so no pyqtgraph item is
    collected in the middle of a later test."""
    from PyQt5.QtCore import QCoreApplication, QEvent

    for w in widgets:
        w.close()
        w.deleteLater()
    widgets.clear()
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    gc.collect()


# ---- data, settings, dialogs, widgets ----------------------------------------------------
@pytest.fixture(scope="session")
def mini():
    """The embedded mini MNIST (9,000 training and 1,000 test digits), loaded once: read it,
    never change it."""
    from convscope.engine.data.datasets import load_mini

    return load_mini()


@pytest.fixture
def settings(tmp_path):
    """The app's Settings in an INI file of the test's own."""
    from PyQt5.QtCore import QSettings

    from convscope.visualizer.settings import Settings

    return Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))


@pytest.fixture
def dialog_errors(monkeypatch):
    """Messages the app would show in error dialogs, captured instead of shown."""
    from convscope.visualizer import dialogs

    shown = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, text: shown.append(text))
    return shown


@pytest.fixture
def widgets(qtbot):
    """A list for the widgets a test makes: closed, deleted and garbage-collected after it."""
    made: list = []
    yield made
    _delete_for_good(made)


# ---- the real main window ----------------------------------------------------------------
@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    """``make_window(hyper=None, theme="light", size=None)``: the real main window (its
    settings in tmp_path), the seed net on the embedded data, paused at step 0, every
    progress batch collected in ``window.progress_seen``; shown at ``size`` (w, h) if given.
    Closed, deleted and garbage-collected afterwards."""
    from convscope.visualizer.main_window import MainWindow
    from convscope.visualizer.messages import Hyper

    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(tmp_path / "window.ini"))
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "data"))  # the learner's own digits
    made: list = []

    def make(hyper=None, theme: str = "light", size=None):
        w = MainWindow(hyper=hyper or Hyper(lr=0.01, batch_size=8, momentum=0.9), theme=theme)
        made.append(w)
        w.progress_seen = []
        w.worker.progress.connect(w.progress_seen.append)
        if size is not None:
            w.resize(*size)
            w.show()
        qtbot.waitUntil(lambda: w.info is not None and w.latest is not None, timeout=30000)
        return w

    yield make
    _delete_for_good(made)


@pytest.fixture
def window(make_window):
    """The real main window: lr 0.01, batch 8, momentum 0.9, light theme, not shown."""
    return make_window()


@pytest.fixture
def run_steps(qtbot):
    """``run_steps(window, n)`` trains the window ``n`` steps from where it is and returns
    the losses of those steps."""
    def run(window, n: int) -> list[float]:
        start = window.latest.step
        window.progress_seen.clear()
        window.worker.steps(n)
        # the snapshot of the last step may arrive before the progress report of that step
        qtbot.waitUntil(lambda: window.latest is not None and window.latest.step == start + n
                        and any(len(b.step) and b.step[-1] >= start + n
                                for b in window.progress_seen), timeout=30000)
        losses = {int(s): float(v) for b in window.progress_seen
                  for s, v in zip(b.step, b.loss, strict=True)}
        return [losses[s] for s in range(start + 1, start + n + 1)]
    return run
