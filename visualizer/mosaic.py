"""Grids of small images drawn with one ImageItem each, and hover lookup.

``tile`` lays out n maps (n, h, w) as one float32 mosaic with NaN gaps (drawn transparent), so
a whole layer costs a single ``setImage``. A ``MosaicView`` (a locked-aspect ViewBox) stacks
several ``Section``s vertically, each with a title and optional per-tile labels, and answers
"which tile and pixel is under the mouse" for hover read-outs.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QPointF
from PyQt5.QtGui import QFont

GAP = 1  # mosaic pixels between tiles


def tile(maps: np.ndarray, cols: int, factor: int = 1, gap: int = GAP, fill=np.nan) -> np.ndarray:
    """(n, h, w, *extra) maps -> mosaic (rows*(h*f+gap)-gap, cols*(w*f+gap)-gap, *extra).

    Map k sits at grid cell (k // cols, k % cols); each pixel is repeated ``factor`` times.
    Gaps hold ``fill``: NaN (drawn transparent) for float maps, which become float32."""
    n, h, w = maps.shape[:3]
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    th, tw = h * factor, w * factor
    dtype = np.float32 if isinstance(fill, float) and np.isnan(fill) else maps.dtype
    out = np.full((rows * (th + gap) - gap, cols * (tw + gap) - gap, *maps.shape[3:]), fill,
                  dtype)
    up = maps if factor == 1 else maps.repeat(factor, axis=1).repeat(factor, axis=2)
    for k in range(n):
        r, c = divmod(k, cols)
        out[r * (th + gap):r * (th + gap) + th, c * (tw + gap):c * (tw + gap) + tw] = up[k]
    return out


def locate(y: float, x: float, n: int, h: int, w: int, cols: int, factor: int = 1,
           gap: int = GAP):
    """Mosaic coordinates -> (map k, row i, col j) of the pixel there, or None in a gap."""
    if y < 0 or x < 0:
        return None
    th, tw = h * factor, w * factor
    r, yi = divmod(int(y), th + gap)
    c, xj = divmod(int(x), tw + gap)
    k = r * cols + c
    if c >= cols or yi >= th or xj >= tw or k >= n:
        return None
    return k, yi // factor, xj // factor


class Section:
    """One titled grid of maps inside a MosaicView (its position is set by the view)."""

    def __init__(self, view: MosaicView, name: str):
        self.view, self.name = view, name
        self.image = pg.ImageItem(axisOrder="row-major")
        self.overlay: pg.ImageItem | None = None
        self.title = pg.TextItem(anchor=(0, 1))
        self.title.setFont(_font(9, bold=True))
        self.labels: list[pg.TextItem] = []
        self.shape = (0, 0, 0)  # (n, h, w) of the maps
        self.cols, self.factor = 1, 1
        self.label_texts: list[str] = []
        self.x0 = self.y0 = 0.0
        self._maps = self._overlay = self._levels = None
        for item in (self.image, self.title):
            view.addItem(item)

    # size in display pixels once tiled
    def size(self, cols: int | None = None) -> tuple[int, int]:
        n, h, w = self.shape
        if n == 0:
            return 0, 0
        cols = max(1, min(cols or self.cols, n))
        rows = -(-n // cols)
        f = self.factor
        return rows * (h * f + GAP) - GAP, cols * (w * f + GAP) - GAP

    def configure(self, n: int, h: int, w: int, factor: int = 1, labels=None) -> None:
        """Shape of the maps this section shows; call ``view.arrange()`` afterwards."""
        self.shape, self.factor = (n, h, w), max(1, int(factor))
        self.label_texts = list(labels or [])
        for item in self.labels:
            self.view.removeItem(item)
        self.labels = []
        for text in self.label_texts:
            item = pg.TextItem(text, anchor=(0.5, 1))
            item.setFont(_font(7))
            self.view.addItem(item)
            self.labels.append(item)
        self.view.apply_colors()

    @property
    def last_maps(self) -> np.ndarray | None:
        """The maps (n, h, w) last shown."""
        return self._maps

    def set_maps(self, maps: np.ndarray, levels) -> None:
        """maps (n, h, w) float -> the mosaic, coloured between ``levels`` = (low, high)."""
        self._maps, self._levels = maps, levels
        mosaic = tile(np.asarray(maps, np.float32), self.cols, self.factor)
        self.image.setImage(mosaic, autoLevels=False, levels=levels)

    def redraw(self) -> None:
        """Tile the last maps again (after the column count changed)."""
        if self._maps is not None and self._maps.shape[0] == self.shape[0]:
            self.set_maps(self._maps, self._levels)
        if self._overlay is not None and self.overlay is not None and self.overlay.isVisible():
            self.set_overlay(self._overlay)

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        """rgba: uint8 (n, h * u, w * u, 4) overlay, u >= 1 sub-pixels per map pixel, or
        None to hide it."""
        if rgba is None:
            self._overlay = None
            if self.overlay is not None:
                self.overlay.setVisible(False)
            return
        if self.overlay is None:
            self.overlay = pg.ImageItem(axisOrder="row-major")
            self.overlay.setZValue(1)
            self.view.addItem(self.overlay)
            self.overlay.setPos(self.x0, self.y0)
        self._overlay = rgba
        u = rgba.shape[1] // self.shape[1]
        img = tile(np.asarray(rgba, np.uint8), self.cols, self.factor, gap=GAP * u, fill=0)
        self.overlay.setImage(img, autoLevels=False, levels=(0, 255))
        self.overlay.setScale(1.0 / u)
        self.overlay.setVisible(True)

    def place(self, x0: float, y0: float) -> None:
        self.x0, self.y0 = x0, y0
        self.image.setPos(x0, y0)
        if self.overlay is not None:
            self.overlay.setPos(x0, y0)
        label_h = getattr(self.view, "label_offset", 0.0) if self.labels else 0.0
        self.title.setPos(x0, y0 - label_h)
        n, h, w = self.shape
        pitch_w = w * self.factor + GAP
        pitch_h = h * self.factor + GAP
        for k, item in enumerate(self.labels):
            r, c = divmod(k, self.cols)
            item.setPos(x0 + c * pitch_w + w * self.factor / 2, y0 + r * pitch_h)
            item.setVisible(r == 0)  # numbers only above the first row of tiles

    def pixel_at(self, x: float, y: float):
        """View coordinates -> (k, i, j) of the map pixel there, or None."""
        n, h, w = self.shape
        if n == 0:
            return None
        return locate(y - self.y0, x - self.x0, n, h, w, self.cols, self.factor)


class MosaicView(pg.ViewBox):
    """A non-interactive, aspect-locked view stacking Sections top to bottom.

    Titles and tile labels keep a fixed size on screen; ``arrange`` reserves room for them in
    display pixels and picks the column count that makes the tiles largest (or uses
    ``fixed_cols``). It runs again whenever the view is resized."""

    TITLE_PX, LABEL_PX, MARGIN_PX = 18, 13, 4

    def __init__(self, max_cols: int = 16, fixed_cols: int | None = None):
        super().__init__(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False,
                         defaultPadding=0.0)
        self.sections: list[Section] = []
        self.max_cols, self.fixed_cols = max_cols, fixed_cols
        self.text_color = "#cccccc"
        self.label_color = "#999999"
        self.sigResized.connect(self.arrange)

    def add_section(self, name: str) -> Section:
        section = Section(self, name)
        self.sections.append(section)
        return section

    def clear_sections(self) -> None:
        for s in self.sections:
            for item in [s.image, s.title, *s.labels] + ([s.overlay] if s.overlay else []):
                self.removeItem(item)
        self.sections = []

    def set_colors(self, text: str, label: str) -> None:
        self.text_color, self.label_color = text, label
        self.apply_colors()

    def apply_colors(self) -> None:
        for s in self.sections:
            s.title.setColor(self.text_color)
            for item in s.labels:
                item.setColor(self.label_color)

    def _band_px(self, s: Section) -> float:
        return (self.TITLE_PX if s.title.toPlainText() else 0) + (
            self.LABEL_PX if s.labels else 0)

    def arrange(self, *_) -> None:
        """Choose columns, stack the sections with room for their text, fit the view."""
        shown = [s for s in self.sections if s.shape[0]]
        rect = self.boundingRect()
        if not shown or rect.width() < 4 or rect.height() < 4:
            return
        width_px = rect.width() - 2 * self.MARGIN_PX
        height_px = rect.height() - 2 * self.MARGIN_PX - sum(self._band_px(s) for s in shown)
        height_px = max(height_px, 8.0)
        n_max = max(s.shape[0] for s in shown)
        options = [self.fixed_cols] if self.fixed_cols else range(
            1, min(n_max, self.max_cols) + 1)
        best, best_scale = 1, -1.0
        for cols in options:
            w = max(s.size(cols)[1] for s in shown)
            h = sum(s.size(cols)[0] for s in shown)
            scale = min(width_px / w, height_px / h)  # display pixels per mosaic pixel
            if scale > best_scale * 1.0001:
                best, best_scale = cols, scale
        scale = best_scale
        y, width = 0.0, 0
        for s in shown:
            if s.cols != best:
                s.cols = best
                s.redraw()
            y += self._band_px(s) / scale
            s.place(0.0, y)
            h, w = s.size()
            y += h + (2 / scale)
            width = max(width, w)
        self.label_offset = self.LABEL_PX / scale
        for s in shown:
            s.place(s.x0, s.y0)
        m = self.MARGIN_PX / scale
        self.setRange(xRange=(-m, width + m), yRange=(-m, y + m), padding=0)

    def pixel_at(self, scene_pos: QPointF):
        """Scene position -> (section, k, i, j) or None."""
        if not self.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.mapSceneToView(scene_pos)
        for s in self.sections:
            hit = s.pixel_at(p.x(), p.y())
            if hit is not None:
                return (s, *hit)
        return None


def _font(size: int, bold: bool = False) -> QFont:
    font = QFont()
    font.setPointSize(size)
    font.setBold(bold)
    return font
