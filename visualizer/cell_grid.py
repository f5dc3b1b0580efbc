"""A clickable grid of cells: maps (n, h, w) drawn as tiles, big cells with their numbers.

Used by the inspector, where every drawn cell is one number of the network. ``clicked(k, i, j)``
reports the tile and cell under a click; ``set_marks`` outlines the selected cell and the cells
it was computed from. Painted with QPainter (nearest neighbour, one QImage per tile).
"""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QPoint, QRect, QSize, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen
from PyQt5.QtWidgets import QSizePolicy, QWidget

SOURCE_COLOR = "#ffb000"  # outline of the cells a selected value is computed from


def short(v: float) -> str:
    """A number that fits in a small cell: 3 significant digits."""
    v = float(v)
    if not np.isfinite(v):
        return ""
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e4:
        return f"{v:.3g}"
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"  # -1.5e-4, not -1.5e-04


def colorize(a: np.ndarray, lut: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """float (h, w) -> uint8 RGBA (h, w, 4) through ``lut`` (256, 4); NaN is transparent,
    infinities take the ends of the scale (levels that are not finite: the finite range)."""
    a = np.asarray(a, dtype=np.float64)  # no overflow in the arithmetic below
    if not (np.isfinite(lo) and np.isfinite(hi)):
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    clean = np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)
    idx = np.clip((clean - lo) / span * (len(lut) - 1), 0, len(lut) - 1)
    rgba = lut[idx.astype(np.intp)].copy()
    rgba[np.isnan(a), 3] = 0
    return rgba


class CellGrid(QWidget):
    clicked = pyqtSignal(int, int, int)  # tile k, row i, col j

    def __init__(self, cell: int = 6, cols: int = 8, gap: int = 6, parent=None):
        super().__init__(parent)
        self.cell_w = self.cell_h = cell
        self.cols, self.gap = cols, gap
        self.maps = np.zeros((0, 0, 0), np.float32)
        self.images: list[QImage] = []
        self.numbers = False
        self.tile_labels: list[str] = []
        self.row_labels: list[str] = []
        self.col_labels: list[str] = []
        self.window = 0  # draw pooling-window lines every ``window`` cells
        self.selected: tuple | None = None
        self.sources: list[tuple] = []
        self.emphasis: set = set()  # tiles drawn with a bold label (the true class)
        self.text_color, self.line_color, self.accent = QColor("#e6e8eb"), QColor("#555"), \
            QColor("#4c9aff")
        self.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)
        self.setCursor(Qt.PointingHandCursor)

    # ---- data --------------------------------------------------------------------------
    def set_data(self, maps: np.ndarray, lut: np.ndarray, levels: tuple, *, numbers=False,
                 tile_labels=(), row_labels=(), col_labels=(), window=0, cell=None, cell_h=None,
                 cols=None) -> None:
        """maps (n, h, w) float; ``levels`` (lo, hi) of the colour scale."""
        self.maps = np.asarray(maps, dtype=np.float32)
        if cell is not None:
            self.cell_w = cell
            self.cell_h = cell_h or cell
        if cols is not None:
            self.cols = cols
        self.numbers, self.window = numbers, window
        self.tile_labels, self.row_labels = list(tile_labels), list(row_labels)
        self.col_labels = list(col_labels)
        self.images = []
        for m in self.maps:
            rgba = np.ascontiguousarray(colorize(m, lut, *levels))
            img = QImage(rgba.data, m.shape[1], m.shape[0], 4 * m.shape[1],
                         QImage.Format_RGBA8888).copy()
            self.images.append(img)
        self._rgba = [colorize(m, lut, *levels) for m in self.maps] if numbers else []
        self.updateGeometry()
        self.resize(self.sizeHint())
        self.update()

    def set_marks(self, selected: tuple | None = None, sources=()) -> None:
        self.selected, self.sources = selected, list(sources)
        self.update()

    def set_colors(self, text: str, line: str, accent: str) -> None:
        self.text_color, self.line_color, self.accent = QColor(text), QColor(line), QColor(accent)
        self.update()

    # ---- geometry ----------------------------------------------------------------------
    def _left(self) -> int:
        if not self.row_labels:
            return 0
        return 6 + max(self.fontMetrics().horizontalAdvance(t) for t in self.row_labels)

    def _band(self, row: int) -> int:
        """Height of the label band above tile row ``row`` (none when its labels are empty)."""
        if self.col_labels and row == 0:
            return 16
        labels = self.tile_labels[row * self.cols:(row + 1) * self.cols]
        return 16 if any(labels) else 0

    def tile_origin(self, k: int) -> QPoint:
        _, h, w = self.maps.shape
        r, c = divmod(k, self.cols)
        x = self._left() + c * (w * self.cell_w + self.gap)
        y = sum(self._band(q) for q in range(r + 1)) + r * (h * self.cell_h + self.gap)
        return QPoint(x, y)

    def cell_rect(self, k: int, i: int, j: int) -> QRect:
        o = self.tile_origin(k)
        return QRect(o.x() + j * self.cell_w, o.y() + i * self.cell_h, self.cell_w, self.cell_h)

    def sizeHint(self) -> QSize:
        n, h, w = self.maps.shape
        if n == 0:
            return QSize(10, 10)
        cols = min(self.cols, n)
        rows = -(-n // self.cols)
        width = self._left() + cols * (w * self.cell_w + self.gap) - self.gap + 1
        height = sum(self._band(q) for q in range(rows)) + rows * (h * self.cell_h + self.gap) \
            - self.gap + 1
        return QSize(width, height)

    def locate(self, x: int, y: int) -> tuple | None:
        n, h, w = self.maps.shape
        for k in range(n):
            o = self.tile_origin(k)
            j, i = (x - o.x()) // self.cell_w, (y - o.y()) // self.cell_h
            if 0 <= i < h and 0 <= j < w and x >= o.x() and y >= o.y():
                return k, int(i), int(j)
        return None

    # ---- Qt ----------------------------------------------------------------------------
    def mousePressEvent(self, event):
        hit = self.locate(event.pos().x(), event.pos().y())
        if hit is not None and event.button() == Qt.LeftButton:
            self.clicked.emit(*hit)

    def paintEvent(self, event):
        n, h, w = self.maps.shape
        if n == 0:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.SmoothPixmapTransform, False)
        font = QFont(self.font())
        font.setPointSizeF(8)
        p.setFont(font)
        widest = max((p.fontMetrics().horizontalAdvance(t) for t in self.tile_labels),
                     default=0)
        label_every = max(1, -(-(widest + 2) // (w * self.cell_w + self.gap)))  # no overlaps
        for k, img in enumerate(self.images):
            o = self.tile_origin(k)
            target = QRect(o.x(), o.y(), w * self.cell_w, h * self.cell_h)
            p.drawImage(target, img)
            p.setPen(QPen(self.line_color, 1))
            p.drawRect(target.adjusted(-1, -1, 0, 0))  # a frame just outside the tile
            if self.window and self.cell_w >= 4:
                self._window_lines(p, target)
            if self.numbers:
                self._numbers(p, k)
            if k < len(self.tile_labels) and k % label_every == 0:
                bold = QFont(font)
                bold.setBold(k in self.emphasis)
                p.setFont(bold)
                p.setPen(self.accent if k in self.emphasis else self.text_color)
                p.drawText(QRect(o.x(), o.y() - 16, w * self.cell_w, 16),
                           Qt.AlignLeft | Qt.AlignVCenter,
                           self.tile_labels[k])
                p.setFont(font)
            if k % self.cols == 0 and k // self.cols < len(self.row_labels):
                p.setPen(self.text_color)
                p.drawText(QRect(0, o.y(), self._left() - 4, h * self.cell_h),
                           Qt.AlignRight | Qt.AlignVCenter, self.row_labels[k // self.cols])
        for j, text in enumerate(self.col_labels[:w]):
            r = self.cell_rect(0, 0, j)
            p.setPen(self.accent if j in self.emphasis else self.text_color)
            p.drawText(QRect(r.x(), 0, r.width(), 16), Qt.AlignCenter, text)
        for k, i, j in self.sources:
            if 0 <= k < n:
                p.setPen(QPen(QColor(SOURCE_COLOR), 2))
                p.drawRect(self.cell_rect(k, i, j).adjusted(0, 0, -1, -1))
        if self.selected is not None and 0 <= self.selected[0] < n:
            r = self.cell_rect(*self.selected)
            grow = 3 if self.cell_w < 8 else 1
            r = r.adjusted(-grow, -grow, grow - 1, grow - 1)
            p.setPen(QPen(QColor("#000000"), 4))  # a dark halo, then a white ring
            p.drawRect(r)
            p.setPen(QPen(QColor("#ffffff"), 2))
            p.drawRect(r)
        p.end()

    def _window_lines(self, p: QPainter, target: QRect) -> None:
        c = QColor(self.line_color)
        c.setAlpha(110)
        p.setPen(QPen(c, 1))
        step_x, step_y = self.window * self.cell_w, self.window * self.cell_h
        for x in range(target.left() + step_x, target.right(), step_x):
            p.drawLine(x, target.top(), x, target.bottom())
        for y in range(target.top() + step_y, target.bottom(), step_y):
            p.drawLine(target.left(), y, target.right(), y)

    def _numbers(self, p: QPainter, k: int) -> None:
        m, rgba = self.maps[k], self._rgba[k]
        font = QFont(p.font())
        widest = max((short(v) for v in m.ravel()), key=len, default="")
        while font.pointSizeF() > 6 and \
                QFontMetrics(font).horizontalAdvance(widest) > self.cell_w - 3:
            font.setPointSizeF(font.pointSizeF() - 0.5)  # small cells: smaller numbers
        p.setFont(font)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if np.isnan(m[i, j]):
                    continue
                r, g, b = (int(v) for v in rgba[i, j, :3])
                light = 0.299 * r + 0.587 * g + 0.114 * b > 140
                p.setPen(QColor("#111111") if light else QColor("#f2f2f2"))
                p.drawText(self.cell_rect(k, i, j), Qt.AlignCenter, short(m[i, j]))
