"""Axes and ranges of the live curves: round x ends, ticks that write their own scale (no hidden
SI factor), log ticks that read as values, a y top that ignores outliers."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtGui import QColor

NICE = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_end(x: float) -> float:
    """The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten)
    at or above x: the followed x axis grows in steps of at most 25%, so its ticks are laid
    out again a few times per decade of samples, not at every refresh."""
    if x <= 1.0:
        return 1.0
    scale = 10.0 ** np.floor(np.log10(x))
    return next(scale * n for n in NICE if scale * n >= x * (1 - 1e-9))


def faint(color: str, alpha: int = 110) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c


def label_once(axis: pg.AxisItem) -> None:
    """Make ``axis`` lay out its label again only when the label's text changes (pyqtgraph
    re-sets its HTML at every range change, which following the run makes every refresh)."""
    shown = [None]

    def update_label() -> None:
        text = axis.labelString()
        if text != shown[0]:
            shown[0] = text
            axis.label.setHtml(text)
            axis._adjustSize()
        axis.picture = None  # the ticks changed with the range
        axis.update()

    axis._updateLabel = update_label


def tick_text(value: float, spacing: float) -> str:
    """A tick's label with its scale written out: 0.15 stays 0.15, 1,200,000 is "1.2M"."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size and spacing >= size / 100:
            digits = max(0, int(np.ceil(-np.log10(spacing / size) - 1e-9)))
            return f"{value / size:.{digits}f}{unit}"
    digits = max(0, int(np.ceil(-np.log10(spacing) - 1e-9))) if spacing > 0 else 0
    return f"{value:.{min(digits, 6)}f}"


def plain_axis(axis: pg.AxisItem) -> None:
    """No hidden SI factor: the scale of every tick is written in the tick itself."""
    axis.enableAutoSIPrefix(False)
    axis.tickStrings = lambda values, scale, spacing: [tick_text(v * scale, spacing * scale)
                                                      for v in values]


def log_ticks(axis: pg.AxisItem) -> None:
    """On a log axis the ticks read as the values (0.1, 1, 10), not their logarithms."""
    plain = axis.tickStrings

    def strings(values, scale, spacing):
        if not axis.logMode:
            return plain(values, scale, spacing)
        out = []
        for v in values:  # label 1, 2 and 5 times a power of ten, leave the others blank
            x = 10.0 ** v
            lead = x / 10.0 ** np.floor(np.log10(x) + 1e-9)
            out.append(f"{x:.3g}" if min(abs(lead - m) for m in (1, 2, 5)) < 0.05 else "")
        return out

    axis.tickStrings = strings


def robust_top(values: list[np.ndarray], share: float = 0.98) -> float | None:
    """The top of the y range: the ``share`` quantile of all values, so a few spikes do not
    flatten the curves (None when there are none)."""
    ys = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.empty(0)
    return float(np.quantile(ys, share)) if len(ys) else None
