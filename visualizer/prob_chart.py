"""The one bar chart of class scores: softmax probabilities, and the logits below them when
given. The Prediction dock (probabilities and logits of the probe digit) and the Draw tab
(probabilities of the drawing) use it. One QPainter pass: about a tenth of the cost of two
pyqtgraph plots, which matters at ~30 repaints a second while training."""
from __future__ import annotations

import math

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPalette, QPen
from PyQt5.QtWidgets import QSizePolicy, QWidget

PROB_TITLE = "softmax probability  out = e^t / Σ e^t"
LOGIT_TITLE = "logits t = w · flat + b"
AXIS_W = 34.0  # room for the y tick labels on the left
SHARE = 0.58  # the probability chart's share of the height


def nice_step(span: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above ``span`` (> 0)."""
    scale = 10.0 ** math.floor(math.log10(span))
    return max(scale * m for m in (1.0, 2.0, 5.0) if scale * m <= span * (1 + 1e-9))


def bar_colours(probs: np.ndarray, label: int | None, theme=None, palette=None) -> list:
    """The true class in "good" and a wrong prediction in "bad"; without a label, the
    predicted class in the accent colour; the others neutral. Without a theme: the palette's
    highlight for the predicted class, its mid tone for the others."""
    pred = int(np.argmax(probs))
    if theme is None:
        return [palette.color(QPalette.Highlight if k == pred else QPalette.Mid)
                for k in range(len(probs))]
    colours = [QColor(theme.bar) for _ in range(len(probs))]
    if label is not None and pred != label:
        colours[pred] = QColor(theme.bad)
    if label is not None:
        colours[label] = QColor(theme.good)
    else:
        colours[pred] = QColor(theme.accent)
    return colours


class ProbChart(QWidget):
    """``set_bars(logits, probs, colours)`` then a repaint (probs None: empty axes);
    ``hovered(k)`` under the mouse (-1 outside the bars). ``with_logits=False``: the
    probabilities only, on the whole height (logits may then be None). ``width_hint``: the
    width it asks for when there is room."""

    hovered = pyqtSignal(int)

    def __init__(self, parent=None, with_logits: bool = True, width_hint: int | None = None):
        super().__init__(parent)
        self.with_logits, self.width_hint = with_logits, width_hint
        self.setMouseTracking(True)
        self.setAttribute(Qt.WA_OpaquePaintEvent)  # paintEvent fills every pixel
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumHeight(150)
        self.logits = self.probs = None
        self.colours: list[QColor] = []
        self.labels = [str(k) for k in range(10)]
        self.span = 1.0  # the logit chart's half range: grows at once, shrinks below 70%
        pal = self.palette()  # until set_colors: the palette's
        self.text, self.muted = pal.color(QPalette.Text), pal.color(QPalette.PlaceholderText)
        self.background = pal.color(QPalette.Base)
        self.small, self.title_font = QFont(self.font()), QFont(self.font())
        self.small.setPointSize(7)
        self.title_font.setPointSize(8)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = super().sizeHint()
        return hint if self.width_hint is None else QSize(self.width_hint, hint.height())

    def set_colors(self, text: str, muted: str, background: str) -> None:
        self.text, self.muted, self.background = QColor(text), QColor(muted), QColor(background)
        self.update()

    def set_labels(self, labels: list[str]) -> None:
        """Class names under the bars; long ones alternate between two rows."""
        self.labels = list(labels)
        self.update()

    def set_bars(self, logits: np.ndarray | None, probs: np.ndarray | None,
                 colours: list[QColor]) -> None:
        self.logits, self.probs, self.colours = logits, probs, colours
        if self.with_logits and logits is not None:
            span = max(1.0, float(np.abs(logits).max()) * 1.1)
            if not 0.7 * self.span <= span <= self.span:
                self.span = span
        self.update()

    # ---- geometry --------------------------------------------------------------------------
    def _label_rows(self) -> int:
        return 2 if max(len(t) for t in self.labels) > 2 else 1

    def _charts(self) -> tuple[QRectF, ...]:
        """The plotting areas (inside the axes) of the probability and the logit chart."""
        line = QFontMetricsF(self.small).height()
        title = QFontMetricsF(self.title_font).height() + 2
        below = line * self._label_rows() + 3
        w, h = self.width() - AXIS_W - 6, float(self.height())
        top_h = h * SHARE if self.with_logits else h
        prob = QRectF(AXIS_W, title + line, w, max(10.0, top_h - title - line - below))
        if not self.with_logits:
            return (prob,)
        logit = QRectF(AXIS_W, top_h + title, w, max(10.0, h - top_h - title - below))
        return prob, logit

    def _slot(self, area: QRectF, k: int) -> tuple[float, float]:
        """Centre and width of bar k."""
        step = area.width() / len(self.labels)
        return area.left() + (k + 0.5) * step, 0.7 * step

    def bar_at(self, x: float, y: float) -> int:
        for area in self._charts():
            grown = area.adjusted(0, -20, 0, 20)
            if grown.contains(QPointF(x, y)):
                k = int((x - area.left()) / area.width() * len(self.labels))
                return k if 0 <= k < len(self.labels) else -1
        return -1

    # ---- painting --------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), self.background)
        prob, *logit = self._charts()
        self._frame(p, prob, PROB_TITLE, [(v, f"{v:.0%}") for v in (0.0, 0.5, 1.0)], 0.0, 1.12)
        if self.probs is not None:
            self._bars(p, prob, self.probs, 0.0, 1.12, labelled=True)
        if logit:
            step = nice_step(self.span)
            ticks = [(v, f"{v:g}") for v in (-step, 0.0, step)]
            self._frame(p, logit[0], LOGIT_TITLE, ticks, -self.span, self.span)
            if self.probs is not None:
                self._bars(p, logit[0], self.logits, -self.span, self.span, labelled=False)
        p.end()

    def _y(self, area: QRectF, v: float, low: float, high: float) -> float:
        return area.bottom() - (v - low) / (high - low) * area.height()

    def _frame(self, p: QPainter, area: QRectF, title: str, ticks, low, high) -> None:
        """Title, y ticks with faint grid lines, the axes and the class labels."""
        p.setFont(self.title_font)
        p.setPen(self.muted)
        title_h = QFontMetricsF(self.title_font).height()
        top = area.top() - title_h - (QFontMetricsF(self.small).height() if low == 0 else 2)
        p.drawText(QRectF(0, top, self.width(), title_h), Qt.AlignHCenter, title)
        p.setFont(self.small)
        grid = QColor(self.muted)
        grid.setAlpha(50)
        for v, text in ticks:
            y = self._y(area, v, low, high)
            p.setPen(QPen(grid, 1))
            p.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
            p.setPen(self.text)
            p.drawText(QRectF(0, y - 8, AXIS_W - 5, 16), Qt.AlignRight | Qt.AlignVCenter, text)
        p.setPen(QPen(self.muted, 1))
        base = self._y(area, 0.0, low, high)
        p.drawLine(QPointF(area.left(), area.top()), QPointF(area.left(), area.bottom()))
        p.drawLine(QPointF(area.left(), base), QPointF(area.right(), base))
        line = QFontMetricsF(self.small).height()
        two = self._label_rows() == 2
        p.setPen(self.text)
        step = self._label_step(area)
        for k, name in enumerate(self.labels):
            if k % step:
                continue  # many classes: as many names as fit (hover a bar for its name)
            x, w = self._slot(area, k)
            y = area.bottom() + 2 + (line if two and (k // step) % 2 else 0)
            p.drawText(QRectF(x - 40, y, 80, line), Qt.AlignHCenter | Qt.AlignTop, name)

    def _label_step(self, area: QRectF) -> int:
        """Name every ``step``-th bar, so that the names (on two rows if long) never touch."""
        fm = QFontMetricsF(self.small)
        widest = max(fm.horizontalAdvance(t) for t in self.labels) + 3
        room = widest / self._label_rows()
        return max(1, math.ceil(room / (area.width() / len(self.labels))))

    def _bars(self, p: QPainter, area: QRectF, data, low: float, high: float,
              labelled: bool) -> None:
        """One bar per class from the zero line; ``labelled``: its value as a percentage."""
        base = self._y(area, 0.0, low, high)
        fm = QFontMetricsF(self.small)
        line = fm.height()
        p.setFont(self.small)
        slot = area.width() / max(1, len(data))
        shown: set = set()  # no room for every value: the largest three that do not touch
        apart = math.ceil((fm.horizontalAdvance("100%") + 2) / max(slot, 1e-6))
        for k in np.argsort(data)[::-1][:3].tolist() if labelled and apart > 1 else ():
            if all(abs(k - j) >= apart for j in shown):
                shown.add(k)
        for k, v in enumerate(data):
            x, w = self._slot(area, k)
            top = self._y(area, float(np.clip(v, low, high)), low, high)
            p.fillRect(QRectF(x - w / 2, min(top, base), w, abs(base - top)), self.colours[k])
            if labelled and v >= 0.005 and (slot >= fm.horizontalAdvance("100%") + 2
                                            or k in shown):
                if apart > 1 and v > 0.6:  # a tall narrow bar: its label beside its top
                    p.setPen(self.text)
                    p.drawText(QRectF(x + w / 2 + 2, top, 60, line), Qt.AlignLeft, f"{v:.0%}")
                    continue
                text = f"{v:.0%}"  # tall bars carry it inside, below the top, when it fits
                inside = v > 0.6 and fm.horizontalAdvance(text) <= w
                p.setPen(QColor("#ffffff") if inside else self.text)
                y = top + 1 if inside else top - line
                p.drawText(QRectF(x - 30, y, 60, line), Qt.AlignHCenter, text)

    # ---- the mouse -------------------------------------------------------------------------
    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.hovered.emit(self.bar_at(event.x(), event.y()))
        super().mouseMoveEvent(event)
