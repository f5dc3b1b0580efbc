"""Starting the app: ``run_app()`` for people, ``take_screenshot()`` for docs and checks."""
from __future__ import annotations

import os
import sys
import time
import traceback

from PyQt5.QtCore import QCoreApplication, QEventLoop, Qt, QTimer
from PyQt5.QtGui import QIcon
from PyQt5.QtWidgets import QApplication

from convscope.engine.data.datasets import ASSETS


def make_app(argv=None) -> QApplication:
    """The QApplication (created once, with high-DPI scaling)."""
    app = QApplication.instance()
    if app is None:
        QCoreApplication.setAttribute(Qt.AA_EnableHighDpiScaling, True)
        QCoreApplication.setAttribute(Qt.AA_UseHighDpiPixmaps, True)
        app = QApplication(list(argv if argv is not None else sys.argv[:1]))
        app.setApplicationName("ConvScope")
        app.setOrganizationName("ConvScope")
        if app.platformName() == "offscreen":  # no desktop settings: a typical desktop font
            font = app.font()
            font.setPointSize(10)
            app.setFont(font)
    if app.windowIcon().isNull():
        app.setDesktopFileName("convscope")  # matches assets/convscope.desktop
        app.setWindowIcon(QIcon(str(ASSETS / "convscope.png")))
    return app


def run_app(theme: str | None = None) -> int:
    """Show the main window and run until it is closed. Returns the exit status. The window
    comes back as it was left (layout, theme, settings; ``theme`` overrides the saved one).
    Without a usable display: DisplayError (one line), before Qt can abort the process."""
    if QApplication.instance() is None:
        from convscope.visualizer.display import check_display
        check_display()
    app = make_app()
    from convscope.visualizer.file_actions import launch_options, persist
    from convscope.visualizer.main_window import MainWindow
    from convscope.visualizer.settings import Settings

    settings = Settings()
    window = MainWindow(**launch_options(settings, theme))
    persist(window, settings)
    window.show()
    app.aboutToQuit.connect(window.shutdown)

    def report(kind, value, tb):  # an exception in a slot: say so and keep running
        traceback.print_exception(kind, value, tb)
        window.show_error(f"{kind.__name__}: {value}")

    sys.excepthook = report
    from convscope.visualizer.interrupt import install
    install(app)  # Ctrl+C in the terminal closes the window cleanly (exit status 130)
    return app.exec_()


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """Process Qt events until ``predicate()`` is true or ``timeout`` seconds pass."""
    loop = QEventLoop()
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        QTimer.singleShot(10, loop.quit)
        loop.exec_()
    return True


def _draw_a_two(canvas) -> None:
    """One pen stroke shaped like a 2, as synthetic mouse events (for pictures of the app)."""
    import numpy as np
    from PyQt5.QtCore import QEvent, QPointF, Qt
    from PyQt5.QtGui import QMouseEvent

    arc = [(140 - 55 * np.cos(s), 95 - 50 * np.sin(s)) for s in np.linspace(0, 1.2 * np.pi, 20)]
    x0, y0 = arc[-1]
    points = arc + [(x0 + (70 - x0) * k / 10, y0 + (225 - y0) * k / 10) for k in range(1, 11)]
    points += [(70 + 150 * k / 10, 225) for k in range(1, 11)]
    for i, (x, y) in enumerate(points):
        kind = (QEvent.MouseButtonPress if i == 0 else QEvent.MouseButtonRelease
                if i == len(points) - 1 else QEvent.MouseMove)
        event = QMouseEvent(kind, QPointF(x, y), Qt.LeftButton,
                            Qt.NoButton if kind == QEvent.MouseButtonRelease else Qt.LeftButton,
                            Qt.NoModifier)
        QApplication.sendEvent(canvas, event)


def _fill_tab(window, name: str) -> None:
    """Give the shown tab something to show: the inspector one traced sample, the evaluation
    view a finished evaluation (the timeline refreshes itself when shown)."""
    if name == "Inspector":
        window.worker.step_samples(1)
        wait_until(lambda: window.inspector.step_trace is not None, 60)
        wait_until(lambda: not window.inspector.settling(), 10)
    elif name.startswith("Draw"):
        _draw_a_two(window.draw_panel.canvas)
        wait_until(lambda: window.draw_panel.prediction() is not None, 10)
    elif name == "Evaluation":
        view = window.file_actions.evaluation
        view.evaluate()
        wait_until(lambda: view.result is not None and not view.running, 120)


def take_screenshot(out: str, steps: int = 300, probe: int = 0, size=None,
                    theme: str = "system", tab: str | None = None, scale: float = 1.0,
                    data: str = "mini", preset: str = "seed") -> int:
    """Train ``steps`` steps of ``preset`` on ``data`` in the real main window (offscreen when
    there is no display), wait until every panel shows that state, and save the whole
    window as a PNG. ``size``: (width, height) or "WxH" in device pixels; ``scale``: the
    device pixel ratio (2: a 2560x1440 screen at 200%, the window laid out at 1280x720 and
    saved at 2560x1440). Returns 0, or 1 on failure."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if scale != 1.0:
        if QApplication.instance() is not None:
            print("--scale must be set before the app starts", file=sys.stderr)
            return 1
        os.environ["QT_SCALE_FACTOR"] = f"{scale:g}"
    app = make_app()
    from convscope.visualizer.main_window import MainWindow
    from convscope.visualizer.messages import RunSettings
    window = MainWindow(RunSettings(preset, dataset=data), theme=theme)
    if isinstance(size, str):
        size = tuple(int(v) for v in size.lower().split("x"))
    width, height = size or (1600, 1000)
    window.resize(round(width / scale), round(height / scale))
    window.show()
    try:
        names = [window.tabs.tabText(i) for i in range(window.tabs.count())]
        match = [i for i, n in enumerate(names) if n.lower().startswith((tab or "").lower())]
        if not match:
            print(f"no tab named {tab!r} (tabs: {', '.join(names)})", file=sys.stderr)
            return 1
        if not wait_until(lambda: window.info is not None, 60):
            print("the dataset did not load in time", file=sys.stderr)
            return 1
        window.set_probe_index(probe)
        if steps > 0:
            window.worker.steps(int(steps))
        if not wait_until(lambda: window.latest is not None
                          and window.latest.step >= steps
                          and window.status.values.get("step", 0) >= steps
                          and window.shows(window.latest), 600):
            print("training did not reach the requested step", file=sys.stderr)
            return 1
        done = []  # a test evaluation of the final weights, for the curves and status bar
        window.evaluated.connect(done.append)
        window.worker.evaluate()
        wait_until(lambda: bool(done), 60)
        if tab is not None:  # chosen after training: the panels in view had to paint first
            window.tabs.setCurrentIndex(match[0])
            _fill_tab(window, names[match[0]])
        wait_until(lambda: False, 0.3)  # let the last repaint and curves settle
        ok = window.grab().save(str(out))
        return 0 if ok else 1
    finally:
        window.close()
        app.processEvents()
