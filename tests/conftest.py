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
ENGINE_TESTS = ROOT / "tests" / "engine"


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
def no_qthread_left_running(request):
    """Fail any test that leaves a QThread running (the thread is joined first, so one
    careless test cannot abort the whole run with "QThread: Destroyed while running").
    The engine's tests are Qt-free: they are not searched (a search of every object costs
    a fraction of a second per test)."""
    yield
    if "PyQt5.QtCore" not in sys.modules or ENGINE_TESTS in request.node.path.parents:
        return
    from PyQt5.QtCore import QThread

    running = [t for t in gc.get_objects() if isinstance(t, QThread) and t.isRunning()]
    for thread in running:
        thread.requestInterruption()  # loops that poll for it stop at their next step
        thread.quit()
        thread.wait(5000)
    names = [t.objectName() or type(t).__name__ for t in running]
    assert not running, f"the test left {len(running)} QThread(s) running: {names}"
