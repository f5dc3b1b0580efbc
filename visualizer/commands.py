"""How the GUI drives the worker: its thread (``start_worker``, ``stop_worker``) and its
command queue, thread-safe, read by the worker between two training steps, and the commands
the worker takes (``WorkerCommands``).

A command is a method of the worker and its arguments, queued by any thread and called on the
worker thread. An urgent command (pause, reset, stop ...) makes a long step or evaluation give
up between two of its chunks: ``urgent_waiting()`` is what those chunks ask.
"""
from __future__ import annotations

import queue
import sys
import threading

import numpy as np
from PyQt5.QtCore import QThread

from convscope.visualizer import jobs
from convscope.visualizer.messages import Hyper, RunSettings


class CommandQueue:
    def __init__(self):
        self._items: queue.SimpleQueue = queue.SimpleQueue()  # (method, args, urgent)
        self._urgent = 0  # urgent commands queued and not taken yet
        self._lock = threading.Lock()

    def put(self, method, *args, urgent: bool = False) -> None:
        """Queue ``method(*args)`` for the worker thread."""
        if urgent:
            with self._lock:
                self._urgent += 1
        self._items.put((method, args, urgent))

    def take(self, timeout: float = 0.0):
        """(method, args) of the next command, waiting up to ``timeout`` seconds; None when
        there is none."""
        try:
            if timeout > 0:
                method, args, urgent = self._items.get(timeout=timeout)
            elif self._items.empty():
                return None
            else:
                method, args, urgent = self._items.get_nowait()
        except queue.Empty:
            return None
        if urgent:
            with self._lock:
                self._urgent = max(0, self._urgent - 1)
        return method, args

    def urgent_waiting(self) -> bool:
        return self._urgent > 0

    def waiting(self) -> bool:
        """Is any command queued?"""
        return not self._items.empty()

    def holds(self, method) -> bool:
        """Is a call of ``method`` queued? (looks without losing or reordering anything)"""
        if self._items.empty():
            return False
        kept = []
        while True:
            try:
                kept.append(self._items.get_nowait())
            except queue.Empty:
                break
        for item in kept:
            self._items.put(item)
        return any(item[0] == method for item in kept)


class WorkerCommands:
    """The worker's commands: called from any thread, each queues a method of the worker
    (``self._commands``, a CommandQueue) carried out on its thread between two steps. An
    urgent command abandons a long step (or evaluation) between two of its chunks."""

    def train(self) -> None:
        self._commands.put(self._do_run, True, urgent=True)

    def pause(self) -> None:
        self._commands.put(self._do_run, False, urgent=True)

    def toggle(self) -> None:
        self._commands.put(self._do_run, None, urgent=True)

    def step_samples(self, n: int = 1) -> None:
        """Pause, then train ``n`` single-sample steps (one traced for the inspector)."""
        self._commands.put(self._start_pending, ("steps", int(n), 1))

    def step_batch(self) -> None:
        self._commands.put(self._start_pending, ("steps", 1, None))

    def steps(self, n: int) -> None:
        """Pause, then train ``n`` steps of the current batch size."""
        self._commands.put(self._start_pending, ("steps", int(n), None))

    def step_epoch(self) -> None:
        self._commands.put(self._start_pending, ("epoch",))

    def evaluate(self) -> None:
        """Evaluate on the test split now (answered by ``evaluated``)."""
        self._commands.put(self._evaluate_now)

    def reset(self, settings: RunSettings, hyper: Hyper | None = None) -> None:
        """New weights: the architecture, data, seed and recipe of ``settings``; ``hyper``:
        the learning rate, batch size and momentum to start with (default: the live ones)."""
        self._commands.put(self._reset, settings, None, hyper, urgent=True)

    def load(self, settings: RunSettings, loaded) -> None:
        """A validated model file (``model_files.LoadedModel``): its weights and position."""
        self._commands.put(self._reset, settings, loaded, urgent=True)

    def resume(self, step: int) -> None:
        """Back to the Timeline's snapshot at ``step`` (answered by ``resumed``)."""
        self._commands.put(self._do_resume, int(step), urgent=True)

    def set_hyper(self, hyper: Hyper) -> None:
        self._commands.put(self._do_hyper, hyper)

    def set_speed(self, steps_per_s: float) -> None:
        """Steps per second while training runs; 0 = full speed."""
        self._commands.put(setattr, self, "steps_per_s", float(steps_per_s))

    def probe(self, image: np.ndarray, label: int | None = None, quiet: bool = False) -> None:
        """Trace this digit (uint8 (28, 28)) in every snapshot; ``quiet``: from the next on."""
        self._commands.put(self._do_probe, ("image", np.array(image, np.uint8), label), quiet)

    def probe_test(self, index: int) -> None:
        """Trace test digit ``index`` of the current dataset in every snapshot."""
        self._commands.put(self._do_probe, ("test", int(index)), False)

    def save_state(self) -> None:
        """A copy of the run between two steps, answered by ``state_ready``."""
        self._commands.put(self._do_save_state)

    def run_job(self, job) -> None:
        """Pause, then ``job(trainer, should_stop)`` between two steps (``jobs.run_job``)."""
        self._commands.put(jobs.run_job, self, job)

    def snapshot_taken(self) -> None:
        """The window has taken up the last snapshot (a frame began): the next may come while
        training runs. A flag, not a queued command: neither thread waits for the other."""
        self._snapshot_token = True

    def stop(self) -> None:
        self._stopping = True
        self._commands.put(self._do_stop, urgent=True)


# How long a thread may hold the interpreter lock while another waits for it (Python's
# default is 5 ms). The worker lets the lock go at every matrix product; with the GUI thread
# painting, each time it then waited up to 5 ms to get it back. At 0.5 ms (bench/README.md,
# "The live app") batch-1 training kept 0.49 of headless speed instead of 0.35, and the GUI's
# median event-loop delay fell from 42 to 5 ms, on a busy machine.
SWITCH_INTERVAL = 0.0005


def start_worker(worker, parent=None) -> QThread:
    """Move ``worker`` to a new QThread running its loop, and start it (and make the two
    threads take turns with the interpreter lock at least every SWITCH_INTERVAL)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    thread = QThread(parent)
    thread.setObjectName("training")
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    thread.start()
    return thread


def stop_worker(worker, thread: QThread, timeout_ms: int = 3000) -> bool:
    """Ask the loop to end at the next sample, then join the thread. True when it ended."""
    worker.stop()
    thread.requestInterruption()
    thread.quit()
    return thread.wait(timeout_ms)


