"""Ctrl+C in the terminal closes the app as cleanly as its window's close button.

Python runs a signal handler only when the interpreter gets control, and inside
``app.exec_()`` Qt's event loop holds it: a timer ticking every ``TICK_MS`` hands control
back. The handler only schedules the closing, which then runs from the event loop (never in
the middle of another slot): every top-level window is closed (the main window stops its
training worker, evaluation and gradient check, and saves its settings), then the event loop
ends with ``INTERRUPTED`` as the exit status.
"""
from __future__ import annotations

import signal

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication

TICK_MS = 100
INTERRUPTED = 130  # the shell's status for a process ended by SIGINT


def close_all(app: QApplication, status: int = INTERRUPTED) -> None:
    app.setQuitOnLastWindowClosed(False)  # its quit() would replace the status with 0
    for widget in app.topLevelWidgets():
        if widget.isVisible():
            widget.close()
    app.exit(status)


def install(app: QApplication, status: int = INTERRUPTED) -> QTimer:
    """Handle SIGINT by closing every window; returns the ticking timer (owned by ``app``)."""
    def on_sigint(signum, frame) -> None:
        QTimer.singleShot(0, lambda: close_all(app, status))

    signal.signal(signal.SIGINT, on_sigint)
    tick = QTimer(app)
    tick.setObjectName("sigint_tick")
    tick.timeout.connect(lambda: None)  # lets Python run its signal handlers
    tick.start(TICK_MS)
    return tick
