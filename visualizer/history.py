"""Bounded curve histories and smoothing, without Qt (tested on their own).

A ``History`` keeps at most ``capacity`` points whatever the run length: when full it merges
neighbouring pairs (mean of x and of y) and from then on averages every ``stride`` incoming
points into one, so memory stays flat and the curve keeps its shape.
"""
from __future__ import annotations

import math

import numpy as np


class History:
    def __init__(self, capacity: int = 8192):
        if capacity < 4 or capacity % 2:
            raise ValueError("capacity must be an even number >= 4")
        self.capacity = capacity
        self._x = np.empty(capacity, np.float64)
        self._y = np.empty(capacity, np.float64)
        self.n = 0
        self.stride = 1  # incoming points averaged into one stored point
        self._px: list = []  # the incomplete bucket
        self._py: list = []

    def __len__(self) -> int:
        return self.n

    @property
    def x(self) -> np.ndarray:
        return self._x[:self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[:self.n]

    def clear(self) -> None:
        self.n, self.stride = 0, 1
        self._px, self._py = [], []

    def cut_after(self, x: float) -> tuple[np.ndarray, np.ndarray]:
        """Remove the points after ``x`` (a fork going back to ``x``); returns them (xs, ys),
        stored points first, then the incomplete bucket's."""
        keep = int(np.searchsorted(self._x[:self.n], x, side="right"))
        xs = np.concatenate([self._x[keep:self.n], np.asarray(self._px, np.float64)])
        ys = np.concatenate([self._y[keep:self.n], np.asarray(self._py, np.float64)])
        self.n = keep
        self._px, self._py = [], []
        late = xs > x
        return xs[late], ys[late]

    def extend(self, xs, ys) -> None:
        """Append points (non-finite y values are dropped: never draw NaN)."""
        xs = np.asarray(xs, np.float64).ravel()
        ys = np.asarray(ys, np.float64).ravel()
        keep = np.isfinite(ys) & np.isfinite(xs)
        if not keep.all():
            xs, ys = xs[keep], ys[keep]
        if self._px:
            xs = np.concatenate([self._px, xs])
            ys = np.concatenate([self._py, ys])
        s = self.stride
        full = len(xs) // s * s
        self._px, self._py = list(xs[full:]), list(ys[full:])
        if full:
            self._append(xs[:full].reshape(-1, s).mean(axis=1),
                         ys[:full].reshape(-1, s).mean(axis=1))

    def _append(self, xs: np.ndarray, ys: np.ndarray) -> None:
        while len(xs):
            if self.n == self.capacity:
                self._compact()
            take = min(self.capacity - self.n, len(xs))
            self._x[self.n:self.n + take] = xs[:take]
            self._y[self.n:self.n + take] = ys[:take]
            self.n += take
            xs, ys = xs[take:], ys[take:]

    def _compact(self) -> None:
        half = self.n // 2
        self._x[:half] = self._x[:2 * half].reshape(-1, 2).mean(axis=1)
        self._y[:half] = self._y[:2 * half].reshape(-1, 2).mean(axis=1)
        self.n = half
        self.stride *= 2


def ema(values, alphas, start: float | None):
    """Exponential moving average of ``values`` with per-value weights ``alphas``.
    Returns (smoothed array, last value); ``start`` None begins at the first value."""
    out = np.empty(len(values), np.float64)
    m = start
    for i, (v, a) in enumerate(zip(values, alphas, strict=True)):
        if not math.isfinite(v):
            out[i] = math.nan if m is None else m
            continue
        m = v if m is None else m + a * (v - m)
        out[i] = m
    return out, m


def alpha_for(batch_sizes, window: float) -> np.ndarray:
    """EMA weight per step so that the average spans about ``window`` samples."""
    b = np.asarray(batch_sizes, np.float64)
    return 1.0 - np.power(1.0 - 1.0 / window, b)


class RateMeter:
    """Samples per second over the last ``window`` seconds: a steady figure, not the rate of
    the last few milliseconds (which jumps with every flush and evaluation)."""

    def __init__(self, window: float = 2.0):
        self.window = float(window)
        self._points: list[tuple[float, int]] = []  # (time, samples seen), oldest first

    def restart(self, t: float, samples: int) -> None:
        """Forget the past (training starts, or the position jumped: resume, Reset)."""
        self._points = [(t, int(samples))]

    def add(self, t: float, samples: int) -> float:
        """Record the position at time ``t``; returns the rate (0 until time has passed)."""
        points = self._points
        if not points or samples < points[-1][1]:
            self.restart(t, samples)
            return 0.0
        points.append((t, int(samples)))
        while len(points) > 2 and t - points[1][0] >= self.window:
            points.pop(0)
        t0, s0 = points[0]
        return (samples - s0) / (t - t0) if t > t0 else 0.0
