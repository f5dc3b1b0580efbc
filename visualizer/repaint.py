"""When the main window repaints its live views (the ~30 Hz tick).

While training runs fast, the governor spaces the repaints so the GUI thread uses about
BUSY_BUDGET of the time, measured as its CPU time: every repaint holds the interpreter lock
the worker needs too, so the views never starve the worker (``bench/gui.py``). Paused, or in
slow motion, every new state is painted at once. Weight panels repaint at most every
SLOW_INTERVAL, the status bar every STATUS_INTERVAL.
"""
from __future__ import annotations

import time

REPAINT_MS = 33  # ~30 Hz
BUSY_BUDGET = 0.20  # the GUI thread's share of time for live views while training
MAX_INTERVAL = 0.5  # repaint at least twice a second whatever the cost
SLOW_INTERVAL = 0.1  # weight panels: at most every 0.1 s while training
STATUS_INTERVAL = 0.2  # the status bar's numbers, at most 5 times a second while training
SLACK = REPAINT_MS / 2000  # half a tick: ticks come every ~32-34 ms, and a strict comparison
# with a 33 ms interval would skip every other one


class RepaintGovernor:
    def __init__(self):
        self.busy = 0.0  # the GUI thread's recent share of time (CPU seconds per second)
        self.paint_interval = REPAINT_MS / 1000  # seconds between repaints while training
        self.frame = 0  # repaints so far
        self.now = 0.0  # time of the current tick
        self._tick = (0.0, 0.0)  # (time, thread CPU time) of the last tick
        self._last_paint = 0.0
        self._slow_painted = 0.0  # when the weight panels were last painted
        self._status_at = 0.0  # when the status bar was last updated

    def restart(self) -> None:
        """Measure the busy share from now on."""
        self.busy, self._tick = 0.0, (time.perf_counter(), time.thread_time())

    def due(self, governed: bool) -> bool:
        """On every tick: measure, and say whether to repaint now. ``governed``: training
        runs fast (slow motion needs no governor)."""
        now, cpu = time.perf_counter(), time.thread_time()
        self.now = now
        span = now - self._tick[0]
        if span > 0:  # averaged over about a second
            a = min(1.0, span)
            self.busy += a * ((cpu - self._tick[1]) / span - self.busy)
        self._tick = (now, cpu)
        if governed:
            factor = min(1.25, max(0.8, self.busy / BUSY_BUDGET))
            self.paint_interval = min(MAX_INTERVAL, max(REPAINT_MS / 1000,
                                                        self.paint_interval * factor))
            if now - self._last_paint < self.paint_interval - SLACK:
                return False
        self._last_paint = now
        return True

    def costly(self, running: bool) -> bool:
        """Over the budget: the curves take turns, one per repaint."""
        return running and self.paint_interval > REPAINT_MS / 1000

    def status_due(self, running: bool) -> bool:
        if running and self.now - self._status_at < STATUS_INTERVAL:
            return False
        self._status_at = self.now
        return True

    def slow_due(self, running: bool) -> bool:
        """Time to repaint the weight panels too?"""
        if running and self.now - self._slow_painted < SLOW_INTERVAL - SLACK:
            return False
        self._slow_painted = self.now
        return True
