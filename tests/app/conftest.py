"""Fixtures of the app's tests: the real main window and its helpers."""
from __future__ import annotations

import gc

import pytest


# ---- the real main window ----------------------------------------------------------------
@pytest.fixture
def dialog_errors(monkeypatch):
    """Messages the app would show in error dialogs, captured instead of shown."""
    from convscope.visualizer import dialogs

    shown = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, text: shown.append(text))
    return shown


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The real main window (its settings in tmp_path), the seed net on the embedded data,
    paused at step 0, every progress batch collected in ``window.progress_seen``. Closed,
    deleted and garbage-collected afterwards, so no pyqtgraph item outlives the test."""
    from PyQt5.QtCore import QCoreApplication, QEvent

    from convscope.visualizer.main_window import MainWindow
    from convscope.visualizer.messages import Hyper

    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(tmp_path / "window.ini"))
    w = MainWindow(hyper=Hyper(lr=0.01, batch_size=8, momentum=0.9), theme="light")
    w.progress_seen = []
    w.worker.progress.connect(w.progress_seen.append)
    try:
        qtbot.waitUntil(lambda: w.info is not None and w.latest is not None, timeout=30000)
        yield w
    finally:
        w.close()
        w.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
        gc.collect()


@pytest.fixture
def run_steps(qtbot):
    """``run_steps(window, n)`` trains the window ``n`` steps from where it is and returns
    the losses of those steps."""
    def run(window, n: int) -> list[float]:
        start = window.latest.step
        window.progress_seen.clear()
        window.worker.steps(n)
        qtbot.waitUntil(lambda: window.latest is not None and window.latest.step == start + n,
                        timeout=30000)
        losses = {int(s): float(v) for b in window.progress_seen
                  for s, v in zip(b.step, b.loss, strict=True)}
        return [losses[s] for s in range(start + 1, start + n + 1)]
    return run
