"""A drawing canvas: round anti-aliased strokes, undo, clear, crisp on high-DPI screens.

Strokes are kept as lists of (x, y, width) in logical pixels and rendered into a QImage at
the screen's device pixel ratio; a curved piece joins consecutive mouse or tablet events,
so fast moves give smooth lines, never dots. The ink coverage (alpha) of that image is what
``ink_array()`` returns: uint8 (H, W) at device resolution, ink bright on 0, which is the
polarity MNIST uses.

A base image (a loaded test digit or file) may sit under the strokes; Clear removes both,
Undo removes the last stroke (or the base when no stroke is left).
"""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QEvent, QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QImage, QKeySequence, QPainter, QPainterPath, QPalette, QPen
from PyQt5.QtWidgets import QSizePolicy, QWidget

Point = tuple[float, float, float]  # (x, y, width) in logical pixels


def _at(point: Point) -> QPointF:
    return QPointF(point[0], point[1])


def _mid(a: Point, b: Point) -> QPointF:
    return QPointF((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)


class DrawCanvas(QWidget):
    """Signals: ``stroke_moved`` while a stroke grows (throttle it), ``ink_changed`` when the
    ink settles (end of a stroke, undo, clear, a new base image)."""

    stroke_moved = pyqtSignal()
    ink_changed = pyqtSignal()

    def __init__(self, parent=None, size: int = 280, brush_width: float = 22.0):
        super().__init__(parent)
        self.setFixedSize(size, size)
        self.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setCursor(Qt.CrossCursor)
        self.setToolTip("Draw with the left button. Right-click, Delete or Escape: clear. "
                        "Ctrl+Z: undo.")
        self.brush_width = float(brush_width)
        self.strokes: list[list[Point]] = []
        self.base: np.ndarray | None = None  # float (h, w) in [0, 1], ink bright
        self._drawing = False
        self._dpr = 0.0
        self._image = QImage()
        self._render()

    # ---- state -------------------------------------------------------------------------
    def is_empty(self) -> bool:
        return not self.strokes and self.base is None

    def ink_array(self) -> np.ndarray:
        """Ink coverage, uint8 (H, W) at device resolution (280 x 280 at ratio 1)."""
        img = self._image
        h, w = img.height(), img.width()
        ptr = img.constBits()
        ptr.setsize(img.bytesPerLine() * h)
        rows = np.frombuffer(ptr, np.uint8).reshape(h, img.bytesPerLine())
        argb = rows[:, :4 * w].reshape(h, w, 4)
        alpha = 3 if np.little_endian else 0  # premultiplied ARGB32 is B, G, R, A in memory
        return argb[:, :, alpha].copy()

    def set_brush_width(self, width: float) -> None:
        self.brush_width = float(width)

    def clear(self) -> None:
        had_ink = not self.is_empty()
        self.strokes.clear()
        self.base = None
        self._drawing = False
        self._render()
        if had_ink:
            self.ink_changed.emit()

    def undo(self) -> None:
        """Remove the last stroke; with no stroke left, remove the base image."""
        if self._drawing:
            return
        if self.strokes:
            self.strokes.pop()
        elif self.base is not None:
            self.base = None
        else:
            return
        self._render()
        self.ink_changed.emit()

    def set_base(self, image: np.ndarray | None) -> None:
        """Show ``image`` (float or uint8 (h, w), ink bright) under no strokes, scaled to fill
        the canvas; None removes it. Existing strokes are cleared."""
        if image is not None:
            a = np.asarray(image, dtype=np.float32)
            if a.ndim != 2:
                raise ValueError(f"a base image must be 2-D, got shape {a.shape}")
            image = a / 255.0 if np.asarray(image).dtype == np.uint8 else np.clip(a, 0, 1)
        self.strokes.clear()
        self.base = image
        self._drawing = False
        self._render()
        self.ink_changed.emit()

    # ---- rendering ---------------------------------------------------------------------
    def _ink_color(self) -> QColor:
        return self.palette().color(QPalette.Text)

    def _render(self) -> None:
        """Redraw the ink image from the base and every stroke."""
        dpr = self.devicePixelRatioF()
        self._dpr = dpr
        w, h = self.width(), self.height()
        img = QImage(round(w * dpr), round(h * dpr), QImage.Format_ARGB32_Premultiplied)
        img.setDevicePixelRatio(dpr)
        img.fill(Qt.transparent)
        self._image = img
        if self.base is not None:
            self._draw_base(img)
        live = self.strokes[-1] if self._drawing else None  # the stroke being drawn now
        for stroke in self.strokes:
            self._draw_stroke(stroke, finished=stroke is not live)
        self.update()

    def _draw_base(self, img: QImage) -> None:
        a = np.ascontiguousarray(np.clip(self.base, 0, 1) * 255).astype(np.uint8)
        bh, bw = a.shape
        c = self._ink_color()
        px = np.empty((bh, bw, 4), dtype=np.uint8)  # premultiplied B, G, R, A
        for i, v in enumerate((c.blue(), c.green(), c.red())):
            px[:, :, i] = (a.astype(np.uint16) * v // 255).astype(np.uint8)
        px[:, :, 3] = a
        if not np.little_endian:
            px = px[:, :, ::-1].copy()
        src = QImage(px.data, bw, bh, 4 * bw, QImage.Format_ARGB32_Premultiplied).copy()
        scale = min(self.width() / bw, self.height() / bh)
        tw, th = bw * scale, bh * scale
        target = QRectF((self.width() - tw) / 2, (self.height() - th) / 2, tw, th)
        p = QPainter(img)
        p.setRenderHint(QPainter.SmoothPixmapTransform)
        p.drawImage(target, src)
        p.end()

    def _piece(self, stroke: list[Point], i: int) -> QPainterPath:
        """The piece drawn when point i (>= 1) arrives, or the tail when i == len(stroke).

        Pieces run from midpoint to midpoint and bend through the point between (a quadratic
        Bezier), so the corners between mouse events come out round; the tail reaches the
        last point when the stroke ends.
        """
        path = QPainterPath()
        if i == len(stroke):
            path.moveTo(_mid(stroke[-2], stroke[-1]))
            path.lineTo(_at(stroke[-1]))
        elif i == 1:
            path.moveTo(_at(stroke[0]))
            path.lineTo(_mid(stroke[0], stroke[1]))
        else:
            path.moveTo(_mid(stroke[i - 2], stroke[i - 1]))
            path.quadTo(_at(stroke[i - 1]), _mid(stroke[i - 1], stroke[i]))
        return path

    def _paint_dot(self, p: QPainter, point: Point) -> QRectF:
        p.setPen(Qt.NoPen)
        p.setBrush(self._ink_color())
        p.drawEllipse(_at(point), point[2] / 2, point[2] / 2)
        r = point[2] / 2 + 2
        return QRectF(point[0] - r, point[1] - r, 2 * r, 2 * r)

    def _paint_piece(self, p: QPainter, stroke: list[Point], i: int) -> QRectF:
        width = stroke[min(i, len(stroke) - 1)][2]
        path = self._piece(stroke, i)
        p.strokePath(path, QPen(self._ink_color(), width, Qt.SolidLine, Qt.RoundCap,
                                Qt.RoundJoin))
        r = width / 2 + 2
        return path.boundingRect().adjusted(-r, -r, r, r)

    def _draw_now(self, stroke: list[Point], i: int | None) -> None:
        """Draw the start dot (i None) or piece i into the ink image; repaint just there."""
        p = QPainter(self._image)
        p.setRenderHint(QPainter.Antialiasing)
        if i is None:
            rect = self._paint_dot(p, stroke[0])
        else:
            rect = self._paint_piece(p, stroke, i)
        p.end()
        self.update(rect.toAlignedRect())

    def _draw_stroke(self, stroke: list[Point], finished: bool) -> None:
        """The same pieces, in the same order, as drawing it live (so pixels match)."""
        p = QPainter(self._image)
        p.setRenderHint(QPainter.Antialiasing)
        self._paint_dot(p, stroke[0])
        last = len(stroke) if finished and len(stroke) > 1 else len(stroke) - 1
        for i in range(1, last + 1):
            self._paint_piece(p, stroke, i)
        p.end()

    def paintEvent(self, event):
        if self.devicePixelRatioF() != self._dpr:  # moved to a screen of another density
            self._render()
        p = QPainter(self)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.Base))
        if self.is_empty():
            p.setPen(pal.color(QPalette.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignCenter, "draw a digit here")
        p.drawImage(QPointF(0, 0), self._image)
        p.setPen(QPen(pal.color(QPalette.Mid), 1))
        p.drawRect(QRectF(0.5, 0.5, self.width() - 1, self.height() - 1))
        p.end()

    def changeEvent(self, event):
        if event.type() == QEvent.PaletteChange:  # theme switch: ink follows the text colour
            self._render()
        super().changeEvent(event)

    # ---- input -------------------------------------------------------------------------
    def _begin(self, x: float, y: float, width: float) -> None:
        self._drawing = True
        point = (x, y, width)
        self.strokes.append([point])
        self._draw_now(self.strokes[-1], None)
        self.stroke_moved.emit()

    def _extend(self, x: float, y: float, width: float) -> None:
        if not self._drawing:
            return
        stroke = self.strokes[-1]
        point = (x, y, width)
        if point[:2] == stroke[-1][:2]:
            return
        stroke.append(point)
        self._draw_now(stroke, len(stroke) - 1)
        self.stroke_moved.emit()

    def _end(self) -> None:
        if not self._drawing:
            return
        self._drawing = False
        stroke = self.strokes[-1]
        if len(stroke) > 1:
            self._draw_now(stroke, len(stroke))  # the tail, up to the last point
        self.ink_changed.emit()

    def mousePressEvent(self, event):
        if event.button() == Qt.LeftButton:
            self._begin(event.localPos().x(), event.localPos().y(), self.brush_width)
        elif event.button() == Qt.RightButton:
            self.clear()
        event.accept()

    def mouseMoveEvent(self, event):
        if self._drawing:  # pressed on this canvas and not yet released
            self._extend(event.localPos().x(), event.localPos().y(), self.brush_width)
        event.accept()

    def mouseReleaseEvent(self, event):
        if event.button() == Qt.LeftButton:
            self._end()
        event.accept()

    def tabletEvent(self, event):
        """Pen input: pressure scales the brush (40% at the lightest touch)."""
        pos = event.posF()
        width = self.brush_width * (0.4 + 0.6 * max(0.0, min(1.0, event.pressure())))
        kind = event.type()
        if kind == QEvent.TabletPress:
            self._begin(pos.x(), pos.y(), width)
        elif kind == QEvent.TabletMove:
            self._extend(pos.x(), pos.y(), width)
        elif kind == QEvent.TabletRelease:
            self._end()
        event.accept()  # no synthesized mouse event follows

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key_Delete, Qt.Key_Escape, Qt.Key_Backspace):
            self.clear()
        elif event.matches(QKeySequence.Undo):
            self.undo()
        else:
            super().keyPressEvent(event)

