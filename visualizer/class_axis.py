"""An axis of class names that stays legible from 2 to 64 classes: every name when there is
room, else every second, third... (as many as fit in the visible range, so zooming in shows
them all). Long names on a bottom axis stand upright (read bottom to top)."""
from __future__ import annotations

import math

import pyqtgraph as pg
from PyQt5 import QtCore, QtGui

from convscope.visualizer.probs import short_name

DIGITS = [str(i) for i in range(10)]
MANY = 20  # more classes than this: cells and bars without numbers, names thinned, zoomable


def class_ticks(names, offset: float = 0.0) -> list:
    """Axis ticks for the classes at ``offset + k`` with their short names ("T-shirt/top" ->
    "T-shirt"; digits stay digits)."""
    return [[(offset + k, short_name(str(n))) for k, n in enumerate(names)]]


def long_names(names) -> bool:
    """Whether the short names are words (Fashion-MNIST) rather than digits or letters."""
    return max(len(short_name(str(n))) for n in names) > 2


def every(count: int, room: float, pixels_per_class: float) -> int:
    """Label every ``every(...)``-th class so that labels ``room`` pixels long never touch."""
    return max(1, math.ceil(room / max(pixels_per_class, 1e-6))) if count else 1


class ClassAxis(pg.AxisItem):
    """An axis (bottom or left) naming the classes at ``offset + k`` (by their short names
    when ``short``)."""

    def __init__(self, orientation: str = "bottom", short: bool = True):
        super().__init__(orientation)
        self.upright, self.short = False, short
        self.names, self.offset = list(DIGITS), 0.0

    def set_names(self, names, offset: float = 0.0) -> None:
        self.names = [short_name(str(n)) if self.short else str(n) for n in names]
        self.offset = offset
        self.upright = self.orientation == "bottom" and long_names(names)
        # level text is measured for overlaps: upright names never reach past the axis ends
        self.setStyle(hideOverlappingLabels=60 if self.upright else
                      self.orientation == "bottom")  # a left axis: the first name too
        self.setTicks(None)  # from tickValues below: as many names as fit
        if self.orientation == "bottom":
            self.setHeight(self._upright_height(self.names) if self.upright else None)
        self.picture = None
        self.update()

    def _font(self) -> QtGui.QFontMetricsF:
        return QtGui.QFontMetricsF(self.style["tickFont"] or QtGui.QFont())

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 - pyqtgraph
        n = len(self.names)
        minVal, maxVal = sorted((minVal, maxVal))  # an inverted axis gives them reversed
        lo = max(0, math.ceil(minVal - self.offset - 1e-9))
        hi = min(n - 1, math.floor(maxVal - self.offset + 1e-9))
        if hi < lo or maxVal <= minVal:
            return []
        fm = self._font()
        across = self.orientation == "bottom" and not self.upright
        room = (max(fm.horizontalAdvance(t) for t in self.names) + 6 if across
                else fm.height() + 1)
        step = every(n, room, size / (maxVal - minVal))
        start = math.ceil(lo / step) * step
        return [(float(step), [self.offset + k for k in range(start, hi + 1, step)])]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph
        out = []
        for v in values:
            k = int(round(v - self.offset))
            out.append(self.names[k] if 0 <= k < len(self.names) else "")
        return out

    def _upright_height(self, labels) -> int:
        text = max(self._font().horizontalAdvance(t) for t in labels)
        label = self.label.boundingRect().height() * 0.8 if self.label.isVisible() else 0
        return int(text + max(0, self.style["tickLength"]) + self.style["tickTextOffset"][1]
                   + label + 4)

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs):  # noqa: N802 - pyqtgraph
        if not self.upright:
            super().drawPicture(p, axisSpec, tickSpecs, textSpecs)
            return
        super().drawPicture(p, axisSpec, tickSpecs, [])
        p.setPen(self.textPen())
        right = QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter
        for rect, _, text in textSpecs:
            p.save()
            p.translate(rect.center().x(), rect.top())
            p.rotate(-90)  # x now points up the screen, y to the right
            width = p.fontMetrics().horizontalAdvance(text) + 2
            height = p.fontMetrics().height()
            p.drawText(QtCore.QRectF(-width, -height / 2, width, height), int(right), text)
            p.restore()


def zoom_when_many(plot_item, n: int, x_range, y_range) -> None:
    """Fit the view to the classes; with more than MANY classes the wheel zooms (within
    them) so every name can be read."""
    vb = plot_item.getViewBox()
    many = n > MANY
    plot_item.setMouseEnabled(many, many)
    vb.setLimits(xMin=x_range[0], xMax=x_range[1], yMin=y_range[0], yMax=y_range[1])
    plot_item.setRange(xRange=x_range, yRange=y_range, padding=0)
