"""The probe digit's logits and softmax probabilities as bar charts, true class highlighted."""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from convscope.visualizer.prob_chart import ProbChart, bar_colours
from convscope.visualizer.theme import Theme

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
        self.setAutoFillBackground(True)  # opaque: a new text never repaints what is behind

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
        self.chart = ProbChart()
        self.chart.hovered.connect(self._on_hover)
        self.hover_label = QLabel("Hover a bar to read it.")
        self.hover_label.setObjectName("hover")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(headline_box)
        layout.addWidget(self.chart, 1)
        layout.addWidget(self.hover_label)
        self.class_names = [str(k) for k in range(CLASSES)]
        self.logits = self.probs = None
        self.label: int | None = None
        self._theme: Theme | None = None
        self.set_classes(self.class_names)

    def set_classes(self, names) -> None:
        self.class_names = list(names)
        self.chart.set_labels([short_name(n) for n in self.class_names])

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
        probs, label = self.probs, self.label
        pred = int(probs.argmax())
        self.chart.set_bars(self.logits, probs, bar_colours(probs, label, theme))
        name = self.class_names[pred]
        verdict = ""
        guess = guessing(float(probs[pred]), len(probs))
        if label is not None:
            ok = pred == label
            color = theme.muted if guess else theme.good if ok else theme.bad
            mark = ("right by chance" if ok else f"true class {self.class_names[label]}") \
                if guess else "✓ right" if ok else f"✗ true class {self.class_names[label]}"
            verdict = f"&nbsp;&nbsp;<span style='color:{color}'>{mark}</span>"
        text = _headline(name, probs[pred], verdict)
        if text != self.headline.text():
            self.headline.setText(text)

    def _on_hover(self, k: int) -> None:
        if self.probs is None or not 0 <= k < CLASSES:
            return
        self.hover_label.setText(f"class {self.class_names[k]}: logit t = {self.logits[k]:+.3f}, "
                                 f"probability = {self.probs[k]:.4f}")

    def apply_theme(self, theme: Theme) -> None:
        self._theme = theme
        self.chart.set_colors(theme.text, theme.muted, theme.plot_bg)
        self._draw()


def guessing(p: float, classes: int = CLASSES) -> bool:
    """True when the top probability is under twice chance (20% of ten classes): the
    network is guessing, whatever class it picks."""
    return p < 2.0 / max(1, classes)


def confidence_words(p: float, classes: int = CLASSES) -> str:
    """ "87% sure", or "guessing (13%)" near chance level."""
    return f"guessing ({p:.0%})" if guessing(p, classes) else f"{p:.0%} sure"


def _headline(name: str, p: float, verdict: str = "") -> str:
    """Whole percents, like the bars: the label is repainted only when the number changes."""
    return (f"<span style='font-size:15pt; font-weight:600'>{name}</span>"
            f"&nbsp;&nbsp;{confidence_words(p)}{verdict}")
