"""The Draw tab's small views: square-pixel pictures (the 28x28 network input and its saliency)
and the verdict, the top class in big letters beside its confidence."""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QRectF, Qt
from PyQt5.QtGui import QFont, QFontMetricsF, QImage, QPainter, QPalette
from PyQt5.QtWidgets import QBoxLayout, QComboBox, QGridLayout, QHBoxLayout, QLabel, QWidget


def percent(p: float) -> str:
    """0.999997 -> '>99.9%', 0.00001 -> '<0.1%', 0.4567 -> '45.7%'."""
    if p > 0.999:
        return ">99.9%"
    if 0 < p < 0.0005:
        return "<0.1%"
    return f"{100 * p:.1f}%"


def saliency_rgb(digit: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """The input dimmed to grey with the gradient over it: red where brightening a pixel
    raises the class score, blue where it lowers it; opacity follows |gradient|.

    digit: uint8 (28, 28); grad: float (28, 28) -> uint8 (28, 28, 3).
    """
    grey = digit.astype(np.float32)[..., None] * 0.35  # (28, 28, 1)
    scale = float(np.percentile(np.abs(grad), 99.5)) or 1.0
    g = np.clip(grad / scale, -1, 1)[..., None]  # (28, 28, 1) in [-1, 1]
    red = np.array([235, 60, 40], np.float32)
    blue = np.array([40, 120, 255], np.float32)
    color = np.where(g > 0, red, blue)  # (28, 28, 3)
    alpha = np.abs(g) ** 0.7
    return (grey * (1 - alpha) + color * alpha).clip(0, 255).astype(np.uint8)



class PixelView(QWidget):
    """A small image (grey (h, w) or RGB (h, w, 3) uint8) scaled up with square pixels."""

    def __init__(self, placeholder: str = "", side: int = 140, parent=None):
        super().__init__(parent)
        self.setFixedSize(side, side)
        self.placeholder = placeholder
        self.array: np.ndarray | None = None
        self._image = QImage()

    def set_array(self, array: np.ndarray | None) -> None:
        self.array = None if array is None else np.ascontiguousarray(array, dtype=np.uint8)
        if self.array is not None:
            a = self.array
            h, w = a.shape[:2]
            if a.ndim == 2:
                self._image = QImage(a.data, w, h, w, QImage.Format_Grayscale8).copy()
            else:
                self._image = QImage(a.data, w, h, 3 * w, QImage.Format_RGB888).copy()
        self.update()

    def paintEvent(self, event):
        p = QPainter(self)
        pal = self.palette()
        if self.array is None:
            p.fillRect(self.rect(), pal.color(QPalette.Base))
            p.setPen(pal.color(QPalette.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignCenter | Qt.TextWordWrap, self.placeholder)
        else:
            p.drawImage(QRectF(self.rect()), self._image)  # nearest neighbour: square pixels
        p.setPen(pal.color(QPalette.Mid))
        p.drawRect(QRectF(0.5, 0.5, self.width() - 1, self.height() - 1))
        p.end()


class Verdict(QWidget):
    """The top class in big bold letters beside its confidence. Names too long for that
    ("T-shirt/top") go above it, in letters small enough not to be wider than ``room``."""

    def __init__(self, room: int, parent=None):
        super().__init__(parent)
        self.room = room
        self.class_label = QLabel()
        self.label = QLabel()  # the confidence, or what is missing
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.4)
        self.label.setFont(font)
        self.box = QBoxLayout(QBoxLayout.LeftToRight, self)
        self.box.setContentsMargins(0, 0, 0, 0)
        self.box.addWidget(self.class_label)
        self.box.addWidget(self.label, 1, Qt.AlignLeft | Qt.AlignVCenter)
        self.fit([str(d) for d in range(10)])

    def fit(self, names) -> None:
        """Size the class letters for these class names."""
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 3.2)
        font.setBold(True)
        sure = QFontMetricsF(self.label.font()).horizontalAdvance("guessing (19.9%)")
        widest = max(QFontMetricsF(font).horizontalAdvance(n) for n in names)
        stacked = widest + sure + 12 > self.room
        self.box.setDirection(QBoxLayout.TopToBottom if stacked else QBoxLayout.LeftToRight)
        if widest > self.room:
            font.setPointSizeF(font.pointSizeF() * self.room / widest)
        self.class_label.setFont(font)

    def show_text(self, name: str, text: str) -> None:
        self.class_label.setText(name)
        self.class_label.setVisible(bool(name))
        self.label.setText(text)


class InputViews(QWidget):
    """The network input and its saliency side by side, ``side`` pixels each, with the class
    the saliency is for (``saliency_combo``: the top class or a chosen one)."""

    def __init__(self, side: int, parent=None):
        super().__init__(parent)
        self.input_view = PixelView("empty", side=side)
        self.input_view.setToolTip("The 28x28 image the network receives")
        self.saliency_view = PixelView("empty", side=side)
        self.saliency_view.setToolTip("Red: brightening the pixel raises the class score; "
                                      "blue: it lowers it")
        self.saliency_combo = QComboBox()
        self.saliency_combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)  # "Ankle boot"
        self.saliency_combo.addItem("top class", None)
        for k in range(10):
            self.saliency_combo.addItem(str(k), k)
        self.legend = QLabel("red ↑ score · blue ↓ score")
        self.legend.setStyleSheet("color: gray;")
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 0.9)
        self.legend.setFont(font)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(2)
        grid.addWidget(QLabel("network input"), 0, 0)
        grid.addWidget(QLabel("saliency"), 0, 1)
        grid.addWidget(self.input_view, 1, 0)
        grid.addWidget(self.saliency_view, 1, 1)
        caption = QHBoxLayout()
        caption.addWidget(QLabel("saliency for"))
        caption.addWidget(self.saliency_combo)
        caption.addStretch(1)
        grid.addLayout(caption, 2, 0, 1, 2)
        grid.addWidget(self.legend, 3, 0, 1, 2)

    def set_class_names(self, names) -> None:
        for k, name in enumerate(names):
            self.saliency_combo.setItemText(k + 1, name)

    def show_saliency(self, digit: np.ndarray | None, grad: np.ndarray | None) -> None:
        """The digit (uint8 (28, 28)) and the saliency ``grad`` (28, 28) over it."""
        self.input_view.set_array(digit)
        self.saliency_view.set_array(None if grad is None or digit is None
                                     else saliency_rgb(digit, grad))
