"""The probe digit's logits and softmax probabilities as bar charts, true class highlighted."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QColor, QFont
from PyQt5.QtWidgets import QGraphicsView, QLabel, QSizePolicy, QVBoxLayout, QWidget

from .theme import Theme

CLASSES = 10


def short_name(name: str, limit: int = 7) -> str:
    """A tick label: "T-shirt/top" -> "T-shirt", "Ankle boot" -> "Ankle"."""
    word = name.replace("/", " ").split()[0] if name.strip() else name
    return word[:limit]


class Holder(QWidget):
    """One child widget filling this one, of fixed height: the child's size hints (a label
    whose text changes at every repaint) then never make the window lay out its docks again."""

    def __init__(self, child: QWidget, parent=None):
        super().__init__(parent)
        self.child = child
        child.setParent(self)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        self.setFixedHeight(child.sizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.child.setGeometry(self.rect())
        super().resizeEvent(event)


class ProbsPanel(QWidget):
    """``set_classes(names)`` after a Reset, ``set_output(logits, probs, label)`` per repaint."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.headline = QLabel(_headline("0", 1.0))
        self.headline.setObjectName("headline")
        self.headline.setTextFormat(Qt.RichText)
        headline_box = Holder(self.headline)
        self.headline.setText("—")
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.setContentsMargins(2, 2, 6, 2)
        # repaint once per update (pyqtgraph alone repaints changed bars twice)
        self.graphics.setViewportUpdateMode(QGraphicsView.NoViewportUpdate)
        self.prob_plot = self.graphics.addPlot(row=0, col=0)
        self.logit_plot = self.graphics.addPlot(row=1, col=0)
        self.graphics.ci.layout.setRowStretchFactor(0, 3)
        self.graphics.ci.layout.setRowStretchFactor(1, 2)
        x = np.arange(CLASSES)
        self.prob_bars = pg.BarGraphItem(x=x, height=np.zeros(CLASSES), width=0.7)
        self.logit_bars = pg.BarGraphItem(x=x, height=np.zeros(CLASSES), width=0.7)
        self.prob_plot.addItem(self.prob_bars)
        self.logit_plot.addItem(self.logit_bars)
        self.zero_line = pg.InfiniteLine(pos=0, angle=0)
        self.logit_plot.addItem(self.zero_line)
        self.value_labels = []
        small = QFont()
        small.setPointSize(7)
        for k in range(CLASSES):
            item = pg.TextItem(anchor=(0.5, 1))
            item.setFont(small)
            item.setPos(k, 0)
            self.prob_plot.addItem(item)
            self.value_labels.append(item)
        for plot, title in ((self.prob_plot, "softmax probability  out = e^t / Σ e^t"),
                            (self.logit_plot, "logits t = w · flat + b")):
            plot.setMouseEnabled(x=False, y=False)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.setXRange(-0.6, CLASSES - 0.4, padding=0)
            plot.showGrid(y=True, alpha=0.15)
            plot.setTitle(title, size="8pt")
        self.prob_plot.setYRange(0, 1.12, padding=0)
        self.prob_plot.getAxis("left").setTicks([[(v, f"{v:.0%}") for v in (0, 0.5, 1.0)]])
        self.hover_label = QLabel("Hover a bar to read it.")
        self.hover_label.setObjectName("hover")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(headline_box)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.hover_label)
        self.class_names = [str(k) for k in range(CLASSES)]
        self.logits = self.probs = None
        self.label: int | None = None
        self._theme: Theme | None = None
        self._span = 0.0  # the logit plot's half range: grows at once, shrinks below 70%
        self.set_classes(self.class_names)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse)

    def set_classes(self, names) -> None:
        self.class_names = list(names)
        labels = [short_name(n) for n in self.class_names]
        long = max(len(t) for t in labels) > 2
        if long:  # every other name a line lower, and room for the outer ones
            labels = [t if k % 2 == 0 else "\n" + t for k, t in enumerate(labels)]
        ticks = [[(k, t) for k, t in enumerate(labels)]]
        margin = 0.9 if long else 0.6
        for plot in (self.prob_plot, self.logit_plot):
            plot.getAxis("bottom").setTicks(ticks)
            plot.getAxis("bottom").setHeight(34 if long else None)
            plot.setXRange(-margin, CLASSES - 1 + margin, padding=0)

    def set_output(self, logits, probs, label: int | None) -> None:
        """logits, probs: (10,) for the probe digit; label: its true class or None."""
        logits = np.nan_to_num(np.asarray(logits, np.float64).ravel())
        probs = np.nan_to_num(np.asarray(probs, np.float64).ravel())
        self.logits, self.probs, self.label = logits, probs, label
        self._draw()

    def _draw(self) -> None:
        theme = self._theme
        if self.probs is None or theme is None:
            return
        probs, logits, label = self.probs, self.logits, self.label
        pred = int(probs.argmax())
        colors = [QColor(theme.bar) for _ in range(CLASSES)]
        if label is not None and pred != label:
            colors[pred] = QColor(theme.bad)
        if label is not None:
            colors[label] = QColor(theme.good)
        else:
            colors[pred] = QColor(theme.accent)
        brushes = [pg.mkBrush(c) for c in colors]
        self.prob_bars.setOpts(height=probs, brushes=brushes, pens=[pg.mkPen(None)] * CLASSES)
        self.logit_bars.setOpts(height=logits, brushes=brushes, pens=[pg.mkPen(None)] * CLASSES)
        span = max(1.0, float(np.abs(logits).max()) * 1.1)
        if not 0.7 * self._span <= span <= self._span:  # a new range redraws the axis
            self._span = span
            self.logit_plot.setYRange(-span, span, padding=0)
        for k, item in enumerate(self.value_labels):
            text = f"{probs[k]:.0%}" if probs[k] >= 0.005 else ""
            inside = probs[k] > 0.6  # tall bars carry their label inside, below the top
            if (text, inside) != getattr(item, "shown", None):  # text items are costly
                item.setText(text)
                item.setAnchor((0.5, 0.0) if inside else (0.5, 1.0))
                item.setColor("#ffffff" if inside else theme.text)
                item.shown = (text, inside)
            item.setPos(k, probs[k])
        name = self.class_names[pred]
        verdict = ""
        if label is not None:
            ok = pred == label
            color = theme.good if ok else theme.bad
            mark = "✓ right" if ok else f"✗ true class {self.class_names[label]}"
            verdict = f"&nbsp;&nbsp;<span style='color:{color}'>{mark}</span>"
        self.headline.setText(_headline(name, probs[pred], verdict))
        self.graphics.viewport().update()

    def _on_mouse(self, pos) -> None:
        if self.probs is None:
            return
        for plot in (self.prob_plot, self.logit_plot):
            if plot.sceneBoundingRect().contains(pos):
                k = int(round(plot.vb.mapSceneToView(pos).x()))
                if 0 <= k < CLASSES:
                    self.hover_label.setText(
                        f"class {self.class_names[k]}: logit t = {self.logits[k]:+.3f}, "
                        f"probability = {self.probs[k]:.4f}")
                return

    def apply_theme(self, theme: Theme) -> None:
        self._theme = theme
        self.graphics.setBackground(theme.plot_bg)
        for plot in (self.prob_plot, self.logit_plot):
            for name in ("left", "bottom"):
                axis = plot.getAxis(name)
                axis.setPen(pg.mkPen(theme.muted))
                axis.setTextPen(pg.mkPen(theme.text))
            plot.titleLabel.item.setDefaultTextColor(QColor(theme.muted))
        self.zero_line.setPen(pg.mkPen(theme.muted, width=1))
        for item in self.value_labels:
            item.setColor(theme.text)
            item.shown = None
        self._draw()


def _headline(name: str, p: float, verdict: str = "") -> str:
    return (f"<span style='font-size:15pt; font-weight:600'>{name}</span>"
            f"&nbsp;&nbsp;{p:.1%} sure{verdict}")
