"""What the worker reports and when: step reports gathered into one ``StepBatch`` at a time,
and the pace of the test evaluations while training runs."""
from __future__ import annotations

import time

import numpy as np

from convscope.visualizer.history import RateMeter
from convscope.visualizer.messages import StepBatch


class StepReports:
    """Rows of (step, samples seen, loss, accuracy, batch size) since the last ``take``."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.rows: list = []
        self.since = time.perf_counter()  # when the last batch was taken
        self.rate = RateMeter()  # samples/s over the last two seconds

    def add(self, report) -> None:
        """One ``engine.net.train.StepReport``."""
        self.rows.append((report.step, report.samples_seen, report.loss,
                          report.correct / report.batch_size, report.batch_size))

    def age(self) -> float:
        return time.perf_counter() - self.since

    def restart_rate(self, samples_seen: int) -> None:
        """Training (re)starts: the rate counts from now."""
        self.since = time.perf_counter()
        self.rate.restart(self.since, samples_seen)

    def take(self, samples_seen: int, epoch: int, lr: float, running: bool) -> StepBatch | None:
        """The rows gathered so far as one StepBatch (None when there are none); the
        samples-per-second rate over the last seconds when training runs, else 0."""
        if not self.rows:
            return None
        now = time.perf_counter()
        rows, self.rows = self.rows, []
        rate = self.rate.add(now, samples_seen) if running else 0.0
        self.since = now
        cols = list(zip(*rows, strict=True))
        return StepBatch(np.array(cols[0], np.int64), np.array(cols[1], np.int64),
                         np.array(cols[2], np.float32), np.array(cols[3], np.float32),
                         np.array(cols[4], np.int32), epoch, lr, rate)


EVAL_INTERVAL = 2.0  # seconds between two test evaluations within an epoch, at least
EVAL_SHARE = 0.02  # and at most this share of the training time


class EvalPacing:
    """While training runs, evaluate on the test split now and then between epochs (the
    epoch's end evaluates anyway), so the test curve keeps up: at most every EVAL_INTERVAL
    seconds and at most EVAL_SHARE of the time."""

    def __init__(self):
        self.next_at = 0.0  # no evaluation before this time
        self.samples = 0  # samples seen at the last one

    def due(self, trainer) -> bool:
        """Time for one? (never at an epoch's end, cursor 0, nor twice on the same weights)"""
        return (time.perf_counter() >= self.next_at and trainer.cursor != 0
                and trainer.samples_seen != self.samples)

    def later(self, samples_seen: int | None = None) -> None:
        """Not before EVAL_INTERVAL from now (a new run, or one given up for a command)."""
        self.next_at = time.perf_counter() + EVAL_INTERVAL
        if samples_seen is not None:
            self.samples = samples_seen

    def done(self, started: float, samples_seen: int) -> None:
        """One took from ``started`` (perf_counter) until now."""
        spent = time.perf_counter() - started
        self.next_at = started + max(EVAL_INTERVAL, spent / EVAL_SHARE)
        self.samples = samples_seen
