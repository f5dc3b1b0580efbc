"""Plots of the evaluation view: confusion matrix, per-class accuracy, one digit's
probabilities. Each takes plain arrays through a ``set_...`` method and follows the app's theme
(``apply_theme``)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtGui, QtWidgets

from convscope.visualizer.class_axis import (  # noqa: F401 (the names, from here too)
    DIGITS,
    MANY,
    ClassAxis,
    class_ticks,
    long_names,
    zoom_when_many,
)
from convscope.visualizer.probs import short_name
from convscope.visualizer.theme import Theme, resolve


# ---- small helpers -----------------------------------------------------------------------
def digit_pixmap(image: np.ndarray, size: int = 56) -> QtGui.QPixmap:
    """uint8 (28, 28) digit -> a grey pixmap of ``size`` pixels, blocky (no smoothing)."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    qimage = QtGui.QImage(img.data, img.shape[1], img.shape[0], img.shape[1],
                          QtGui.QImage.Format_Grayscale8).copy()
    return QtGui.QPixmap.fromImage(qimage.scaled(size, size, QtCore.Qt.KeepAspectRatio,
                                                 QtCore.Qt.FastTransformation))


class _ThemedPlot(pg.PlotWidget):
    """A PlotWidget drawn in a ``visualizer.theme.Theme``'s colours; ``apply_theme`` restyles
    it and redraws its data (``redraw``)."""

    def __init__(self, parent=None, **kwargs):
        super().__init__(parent, **kwargs)
        self.plotItem.setMenuEnabled(False)
        self.plotItem.hideButtons()
        self.plotItem.setMouseEnabled(False, False)
        self.theme = resolve("system")

    def apply_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.setBackground(theme.plot_bg)
        for name in ("left", "bottom"):
            axis = self.plotItem.getAxis(name)
            axis.setPen(theme.muted)
            axis.setTextPen(theme.text)
            if axis.label.toPlainText():
                axis.setLabel(axis.labelText, color=theme.text)
        self.plotItem.titleLabel.setText(self.plotItem.titleLabel.text, color=theme.text)
        self.redraw()

    def redraw(self) -> None:
        """Redraw the data in the current theme."""


class ConfusionPlot(_ThemedPlot):
    """n x n confusion matrix: counts as text (up to MANY classes), colour = share of the true
    class's row (sqrt scale so small confusions show). Diagonal in the theme's "good" colour,
    confusions in its "bad" colour. Clicking a cell emits ``cell_clicked(true, predicted)``;
    hovering names it. More than MANY classes: the wheel zooms."""
    cell_clicked = QtCore.pyqtSignal(int, int)  # true, predicted

    def __init__(self, parent=None):
        super().__init__(parent, axisItems={"bottom": ClassAxis(), "left": ClassAxis("left")})
        p = self.plotItem
        p.setTitle("Confusion matrix")
        p.setLabel("bottom", "predicted (colour: share of the true class)")
        p.setLabel("left", "true")
        p.invertY(True)
        self.image = pg.ImageItem(np.zeros((10, 10, 4), np.uint8), axisOrder="row-major")
        p.addItem(self.image)
        self.texts = []
        self.selection = QtWidgets.QGraphicsRectItem(0, 0, 1, 1)
        self.selection.setPen(pg.mkPen(width=3))
        self.selection.setVisible(False)
        p.addItem(self.selection)
        self.n = 0
        self.confusion = np.zeros((10, 10), dtype=np.int64)
        self.set_class_names(DIGITS)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.apply_theme(self.theme)

    def set_class_names(self, names) -> None:
        """The class names: short ones on the axes (as many as fit), full ones in the
        tooltip. A new number of classes resizes the matrix."""
        self.class_names = [str(n) for n in names]
        n = len(self.class_names)
        self.plotItem.getAxis("bottom").set_names(names, 0.5)
        self.plotItem.getAxis("left").set_names(names, 0.5)
        if n == self.n:
            return
        self.n = n
        zoom_when_many(self.plotItem, n, (0, n), (0, n))
        for t in self.texts:
            self.plotItem.removeItem(t)
        self.texts = []
        if n <= MANY:
            for r in range(n):
                for c in range(n):
                    t = pg.TextItem("", anchor=(0.5, 0.5))
                    t.setPos(c + 0.5, r + 0.5)
                    self.plotItem.addItem(t)
                    self.texts.append(t)
        self.confusion = np.zeros((n, n), dtype=np.int64)
        self.redraw()

    def set_confusion(self, confusion: np.ndarray) -> None:
        """Counts (n, n), row = true class."""
        self.confusion = np.asarray(confusion)
        self.redraw()

    def redraw(self) -> None:
        n = len(self.confusion)
        rows = np.maximum(self.confusion.sum(axis=1, keepdims=True), 1)
        share = np.sqrt(self.confusion / rows)[..., None]  # (n, n, 1) in [0, 1]
        base, good, bad = (np.array(QtGui.QColor(c).getRgb()[:3], float) for c in (
            self.theme.plot_bg, self.theme.good, self.theme.bad))
        target = np.where(np.eye(n, dtype=bool)[..., None], good, bad)  # (n, n, 3)
        rgb = np.round(base + (target - base) * share)
        rgba = np.concatenate([rgb, np.full((n, n, 1), 255.0)], axis=2).astype(np.uint8)
        light = (rgb.max(axis=2) + rgb.min(axis=2)) / 2 >= 150  # QColor's lightness
        for k, text in enumerate(self.texts[:n * n]):
            r, c = divmod(k, n)
            count = int(self.confusion[r, c])
            text.setText(str(count) if count else "")
            text.setColor("k" if light[r, c] else "w")
        self.image.setImage(rgba, autoLevels=False)
        self.image.setRect(QtCore.QRectF(0, 0, n, n))  # cell (r, c): [c, c+1] x [r, r+1]
        self.selection.setPen(pg.mkPen(self.theme.text, width=3))

    def select(self, cell: tuple[int, int] | None) -> None:
        self.selection.setVisible(cell is not None)
        if cell is not None:
            self.selection.setRect(cell[1], cell[0], 1, 1)

    def _cell_at(self, scene_pos) -> tuple[int, int] | None:
        pos = self.plotItem.vb.mapSceneToView(scene_pos)
        r, c = int(np.floor(pos.y())), int(np.floor(pos.x()))
        return (r, c) if 0 <= r < self.n and 0 <= c < self.n else None

    def _on_click(self, event) -> None:
        cell = self._cell_at(event.scenePos())
        if cell is not None and event.button() == QtCore.Qt.LeftButton:
            self.cell_clicked.emit(*cell)

    def _on_move(self, scene_pos) -> None:
        cell = self._cell_at(scene_pos)
        if cell is None or self.confusion.shape != (self.n, self.n):
            self.setToolTip("")
            return
        r, c = cell
        true, pred = self.class_names[r], self.class_names[c]
        n, total = int(self.confusion[r, c]), int(self.confusion[r].sum())
        share = f" ({100 * n / total:.1f}% of {_all_of(true)})" if total else ""
        verb = "correctly classified" if r == c else f"taken for {pred}"
        self.setToolTip(f"true {true}, predicted {pred}: {n} digits {verb}{share}\n"
                        "click to list them")


def _all_of(name: str) -> str:
    """"3" -> "the 3s", "Trouser" -> "class Trouser"."""
    return f"the {name}s" if name.isdigit() else f"class {name}"


class PerClassPlot(_ThemedPlot):
    """Horizontal bars: accuracy of each true class, with the percentage written at the end
    (up to MANY classes; beyond, in the tooltip, and the wheel zooms)."""

    def __init__(self, parent=None):
        super().__init__(parent, axisItems={"left": ClassAxis("left", short=False)})
        p = self.plotItem
        p.setTitle("Per-class accuracy")
        p.invertY(True)
        p.getAxis("bottom").setTicks([[(v, f"{int(v * 100)}%") for v in (0, 0.5, 1)]])
        p.getAxis("bottom").setStyle(hideOverlappingLabels=False)  # 0% and 100% at the ends
        self.bars = pg.BarGraphItem(x0=np.zeros(10), y=np.arange(10), height=0.7,
                                    width=np.zeros(10), pen=None)
        p.addItem(self.bars)
        self.texts: list = []
        self.names: list = []
        self.accuracy = np.full(10, np.nan)
        self.set_class_names(DIGITS)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.apply_theme(self.theme)

    def set_class_names(self, names) -> None:
        self.names = [str(n) for n in names]
        n = len(self.names)
        self.plotItem.getAxis("left").set_names(names)
        # room for the "100%" label at the end
        zoom_when_many(self.plotItem, n, (-0.02, 1.07), (-0.6, n - 0.4))
        self.plotItem.getViewBox().setMouseEnabled(x=False, y=n > MANY)
        for t in self.texts:
            self.plotItem.removeItem(t)
        self.texts = [pg.TextItem("", anchor=(0, 0.5)) for _ in range(n if n <= MANY else 0)]
        for t in self.texts:
            self.plotItem.addItem(t)
        if len(self.accuracy) != n:
            self.accuracy = np.full(n, np.nan)
        self.redraw()

    def set_accuracy(self, per_class: np.ndarray) -> None:
        """Accuracy of each class (n,) in [0, 1], NaN for a class without digits."""
        self.accuracy = np.asarray(per_class, dtype=float)
        self.redraw()

    def redraw(self) -> None:
        acc = np.nan_to_num(self.accuracy, nan=0.0)
        self.bars.setOpts(x0=np.zeros(len(acc)), y=np.arange(len(acc)), width=acc,
                          brush=self.theme.accent)
        for i, t in enumerate(self.texts[:len(acc)]):  # inside a long bar, after a short one
            t.setText("—" if np.isnan(self.accuracy[i]) else f"{100 * self.accuracy[i]:.1f}%")
            inside = acc[i] >= 0.4
            t.setAnchor((1, 0.5) if inside else (0, 0.5))
            t.setColor("#ffffff" if inside else self.theme.text)
            t.setPos(acc[i] - 0.01 if inside else acc[i] + 0.01, i)

    def _on_move(self, scene_pos) -> None:
        k = int(round(self.plotItem.vb.mapSceneToView(scene_pos).y()))
        if not 0 <= k < min(len(self.names), len(self.accuracy)):
            self.setToolTip("")
            return
        a = self.accuracy[k]
        self.setToolTip(f"class {self.names[k]}: " + ("no test images" if np.isnan(a) else
                                                      f"{100 * a:.1f}% right"))


class ProbabilityPlot(_ThemedPlot):
    """Ten probability bars of one digit: the true class in "good", a wrong prediction in
    "bad", the others neutral. Up to ten short names name every bar; long class names or
    more classes name the coloured ones only: the true class, and the prediction a line
    lower."""

    def __init__(self, parent=None):
        super().__init__(parent)
        p = self.plotItem
        p.setYRange(0, 1.08, padding=0)
        p.getAxis("bottom").setStyle(hideOverlappingLabels=40)  # a name under an outer bar
        p.getAxis("left").setTicks([[(v, f"{int(v * 100)}%") for v in (0, 0.5, 1)]])
        self.bars = pg.BarGraphItem(x=np.arange(10), height=np.zeros(10), width=0.7)
        p.addItem(self.bars)
        self.probs, self.true, self.predicted = np.zeros(10), -1, -1
        self.set_class_names(DIGITS)
        self.apply_theme(self.theme)

    def set_class_names(self, names) -> None:
        self.names = [t for _, t in class_ticks(names)[0]]
        self.few = not long_names(names) and len(names) <= 10  # a name under every bar
        lines = QtGui.QFontMetrics(QtGui.QFont()).lineSpacing() * 2 + 8
        self.plotItem.getAxis("bottom").setHeight(None if self.few else lines)
        self.plotItem.setXRange(-0.6, len(names) - 0.4, padding=0)
        if len(self.probs) != len(names):
            self.probs, self.true, self.predicted = np.zeros(len(names)), -1, -1
        self._label_bars()
        self.redraw()

    def _label_bars(self) -> None:
        labels = list(self.names)
        if not self.few:
            shown = {self.predicted: "\n" + labels[self.predicted]} if self.predicted >= 0 else {}
            if self.true >= 0:
                shown[self.true] = labels[self.true]
            labels = [shown.get(k, "") for k in range(len(labels))]
        self.plotItem.getAxis("bottom").setTicks([list(enumerate(labels))])

    def set_probs(self, probs: np.ndarray, true: int, predicted: int) -> None:
        """probs (n,); -1 for no class."""
        self.probs, self.true, self.predicted = np.asarray(probs, dtype=float), true, predicted
        self._label_bars()
        self.redraw()

    def redraw(self) -> None:
        t = self.theme
        brushes = [t.good if i == self.true else t.bad if i == self.predicted else t.bar
                   for i in range(len(self.probs))]
        self.bars.setOpts(x=np.arange(len(self.probs)), height=self.probs, brushes=brushes,
                          pen=None)


class ThumbnailDelegate(QtWidgets.QStyledItemDelegate):
    """Draws a gallery item: the digit's icon with its caption lines under it (the item's
    text, split at newlines), centred; full text width, no eliding. Every item has room for
    the longest ``caption`` of the class names given to ``set_names``."""
    names = DIGITS  # short class names
    words = False  # long names: "true", "→ predicted" on lines of their own

    def set_names(self, names) -> None:
        self.names = [short_name(str(n)) for n in names]
        self.words = long_names(names)

    def caption(self, true: int, predicted: int, p: float) -> str:
        """"4 → 9" or "Shirt", "→ T-shirt"; then the probability of the prediction."""
        t, q = self.names[true], self.names[predicted]
        return f"{t}\n→ {q}\n{100 * p:.1f}%" if self.words else f"{t} → {q}\n{100 * p:.1f}%"

    def sizeHint(self, option, index):  # noqa: N802 - Qt override
        fm = option.fontMetrics
        side = option.decorationSize.width()
        name = max(fm.horizontalAdvance(n) for n in self.names)
        if self.words:
            lines, text = 3, name + fm.horizontalAdvance("→  ")
        else:
            lines, text = 2, 2 * name + fm.horizontalAdvance(" →  ")
        return QtCore.QSize(max(side, text) + 16, side + fm.lineSpacing() * lines + 14)

    def paint(self, painter, option, index):
        painter.save()
        rect = option.rect.adjusted(2, 2, -2, -2)
        pal = option.palette
        if option.state & QtWidgets.QStyle.State_Selected:
            painter.fillRect(rect, pal.color(QtGui.QPalette.Highlight))
            painter.setPen(pal.color(QtGui.QPalette.HighlightedText))
        else:
            painter.setPen(pal.color(QtGui.QPalette.Text))
        icon = index.data(QtCore.Qt.DecorationRole)
        side = option.decorationSize.width()
        if icon is not None:
            icon.paint(painter, QtCore.QRect(rect.center().x() - side // 2, rect.top() + 3,
                                             side, side))
        text_rect = QtCore.QRect(rect.left(), rect.top() + side + 4, rect.width(),
                                 rect.height() - side - 4)
        painter.drawText(text_rect, QtCore.Qt.AlignHCenter | QtCore.Qt.AlignTop,
                         str(index.data(QtCore.Qt.DisplayRole)))
        painter.restore()
