"""Shared fixtures. Real data from ../shared/data is optional: tests using it skip without it."""
from __future__ import annotations

import gc
import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def _read_idx(path: Path, offset: int) -> np.ndarray:
    return np.frombuffer(gzip.open(path).read(), np.uint8, offset=offset)


@pytest.fixture(scope="session")
def official_test_set():
    """The official MNIST test set (10,000 digits) from ../shared/data, or skip."""
    images = SHARED_MNIST / "t10k-images-idx3-ubyte.gz"
    labels = SHARED_MNIST / "t10k-labels-idx1-ubyte.gz"
    if not (images.exists() and labels.exists()):
        pytest.skip("../shared/data/mnist is not available")
    return _read_idx(images, 16).reshape(-1, 28, 28), _read_idx(labels, 8)


@pytest.fixture(autouse=True)
def own_settings_file(tmp_path, monkeypatch):
    """Every test keeps the app's settings in a file of its own, never the user's."""
    monkeypatch.setenv("CONVSCOPE_SETTINGS", str(tmp_path / "settings.ini"))


@pytest.fixture(autouse=True)
def no_qthread_left_running():
    """Fail any test that leaves a QThread running (the thread is joined first, so one
    careless test cannot abort the whole run with "QThread: Destroyed while running")."""
    yield
    if "PyQt5.QtCore" not in sys.modules:
        return
    from PyQt5.QtCore import QThread

    running = [t for t in gc.get_objects() if isinstance(t, QThread) and t.isRunning()]
    for thread in running:
        thread.requestInterruption()  # loops that poll for it stop at their next step
        thread.quit()
        thread.wait(5000)
    names = [t.objectName() or type(t).__name__ for t in running]
    assert not running, f"the test left {len(running)} QThread(s) running: {names}"


# ---- the real main window ----------------------------------------------------------------
@pytest.fixture
def dialog_errors(monkeypatch):
    """Messages the app would show in error dialogs, captured instead of shown."""
    from visualizer import dialogs

    shown = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, text: shown.append(text))
    return shown


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The real main window (its settings in tmp_path), the seed net on the embedded data,
    paused at step 0, every progress batch collected in ``window.progress_seen``. Closed,
    deleted and garbage-collected afterwards, so no pyqtgraph item outlives the test."""
    from PyQt5.QtCore import QCoreApplication, QEvent

    from visualizer.main_window import MainWindow
    from visualizer.worker import Hyper

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
        window.worker.submit("steps", n)
        qtbot.waitUntil(lambda: window.latest is not None and window.latest.step == start + n,
                        timeout=30000)
        losses = {int(s): float(v) for b in window.progress_seen
                  for s, v in zip(b.step, b.loss, strict=True)}
        return [losses[s] for s in range(start + 1, start + n + 1)]
    return run
