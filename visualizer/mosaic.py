"""Grids of small images drawn with one ImageItem each, and hover lookup.

``tile`` lays out n maps (n, h, w) as one float32 mosaic with NaN gaps (drawn transparent), so
a whole layer costs a single ``setImage``. A ``MosaicView`` (a locked-aspect ViewBox) stacks
several ``Section``s vertically, each with a title and optional per-tile labels above every
row of tiles, and answers "which tile and pixel is under the mouse" for hover read-outs.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QPointF, pyqtSignal
from PyQt5.QtGui import QFont

from convscope.visualizer.theme import cached

GAP = 1  # mosaic pixels between tiles


def stepped(value: float, ratio: float) -> float:
    """The smallest power of ``ratio`` (> 1) at or above ``value`` (> 0): a colour scale that
    moves in steps, so its colour bar and title are laid out again only when it steps."""
    return float(ratio ** math.ceil(math.log(value, ratio) - 1e-9))


def set_scale(bar: pg.ColorBarItem, scale: float) -> None:
    """Show -scale..scale on ``bar``, only when it changed (a change lays its ticks out)."""
    if bar.levels() != (-scale, scale):
        bar.setLevels((-scale, scale))


def set_title(item: pg.TextItem, text: str) -> None:
    """Set a TextItem's text only when it changes (each change lays the text out again)."""
    if getattr(item, "shown_text", None) != text:
        item.setText(text)
        item.shown_text = text


def tile(maps: np.ndarray, cols: int, factor: int = 1, gap: int = GAP, fill=np.nan,
         lead: int = 0, top: int = 0) -> np.ndarray:
    """(n, h, w, *extra) maps -> mosaic (top+rows*(lead+h*f+gap)-gap, cols*(w*f+gap)-gap, ...).

    Map k sits at grid cell (k // cols, k % cols), each pixel repeated ``factor`` times, each
    row of tiles below a band of ``lead`` pixels and the first one below ``top`` more (room
    for labels). Gaps hold ``fill``: NaN (drawn transparent) for float maps, which become
    float32."""
    n, h, w = maps.shape[:3]
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    th, tw = h * factor, w * factor
    ph, pw = lead + th + gap, tw + gap  # pitch
    dtype = np.float32 if isinstance(fill, float) and np.isnan(fill) else maps.dtype
    out = np.full((top + rows * ph - gap, cols * pw - gap, *maps.shape[3:]), fill, dtype)
    up = maps if factor == 1 else maps.repeat(factor, axis=1).repeat(factor, axis=2)
    for k in range(n):
        r, c = divmod(k, cols)
        y = top + r * ph + lead
        out[y:y + th, c * pw:c * pw + tw] = up[k]
    return out


def locate(y: float, x: float, n: int, h: int, w: int, cols: int, factor: int = 1,
           gap: int = GAP, lead: int = 0, top: int = 0):
    """Mosaic coordinates -> (map k, row i, col j) of the pixel there, or None in a gap."""
    y -= top
    if y < 0 or x < 0:
        return None
    th, tw = h * factor, w * factor
    r, yi = divmod(int(y), lead + th + gap)
    c, xj = divmod(int(x), tw + gap)
    yi -= lead
    k = r * cols + c
    if c >= cols or not 0 <= yi < th or xj >= tw or k >= n:
        return None
    return k, yi // factor, xj // factor


class Section:
    """One titled grid of maps inside a MosaicView (its position is set by the view)."""

    def __init__(self, view: MosaicView, name: str):
        self.view, self.name = view, name
        self.image = pg.ImageItem(axisOrder="row-major")
        self.title = cached(pg.TextItem(anchor=(0, 1)))
        self.title.setFont(_font(9, bold=True))
        self.labels: list[pg.TextItem] = []
        self.shape = (0, 0, 0)  # (n, h, w) of the maps
        self.cols, self.factor = 1, 1
        self.lead = self.top = 0  # label bands above every row / above the first row
        self.every_row = True
        self.x0 = self.y0 = 0.0
        self._maps = self._levels = self._rgba = None
        for item in (self.image, self.title):
            view.addItem(item)

    def bands(self, band: int) -> tuple[int, int]:
        """(lead, top) for a label band of ``band`` mosaic pixels."""
        if not self.labels:
            return 0, 0
        return (band, 0) if self.every_row else (0, band)

    def size(self, cols: int | None = None, band: int | None = None) -> tuple[int, int]:
        """(height, width) of the mosaic in mosaic pixels."""
        n, h, w = self.shape
        if n == 0:
            return 0, 0
        cols = max(1, min(cols or self.cols, n))
        lead, top = (self.lead, self.top) if band is None else self.bands(band)
        rows = -(-n // cols)
        f = self.factor
        return top + rows * (lead + h * f + GAP) - GAP, cols * (w * f + GAP) - GAP

    def configure(self, n: int, h: int, w: int, factor: int = 1, labels=None,
                  every_row: bool = True) -> None:
        """Shape of the maps this section shows, and one label per map (shown above its
        tile; with ``every_row`` False only the first row's) or None. Call
        ``view.arrange()`` afterwards."""
        self.shape, self.factor = (n, h, w), max(1, int(factor))
        self.every_row = every_row
        for item in self.labels:
            self.view.removeItem(item)
        self.labels = []
        for text in labels or []:
            item = cached(pg.TextItem(text, anchor=(0.5, 1)))
            item.setFont(_font(7))
            self.view.addItem(item)
            self.labels.append(item)
        self._maps = self._rgba = None
        self.view.apply_colors()

    @property
    def last_maps(self) -> np.ndarray | None:
        """The maps (n, h, w) last shown."""
        return self._maps

    def set_maps(self, maps: np.ndarray, levels) -> None:
        """maps (n, h, w) float -> the mosaic, coloured between ``levels`` = (low, high)."""
        self._maps, self._levels, self._rgba = maps, levels, None
        mosaic = tile(np.asarray(maps, np.float32), self.cols, self.factor, lead=self.lead,
                      top=self.top)
        self.image.setImage(mosaic, autoLevels=False, levels=levels)

    def set_rgba(self, rgba: np.ndarray, maps: np.ndarray | None = None) -> None:
        """rgba: uint8 (n, h, w, 4), maps already coloured (one image to draw); ``maps``
        (n, h, w) is what ``last_maps`` returns."""
        self._maps, self._rgba = maps, rgba
        mosaic = tile(rgba, self.cols, self.factor, fill=0, lead=self.lead, top=self.top)
        self.image.setImage(mosaic, autoLevels=False, levels=(0, 255))

    def redraw(self) -> None:
        """Tile the last maps again (after the layout changed)."""
        if self._rgba is not None and self._rgba.shape[0] == self.shape[0]:
            self.set_rgba(self._rgba, self._maps)
        elif self._maps is not None and self._maps.shape[0] == self.shape[0]:
            self.set_maps(self._maps, self._levels)

    def place(self, x0: float, y0: float, scale: float = 0.0) -> None:
        """Put the section's top-left corner at (x0, y0); ``scale`` (display pixels per
        mosaic pixel) thins the labels out where they would overlap."""
        self.x0, self.y0 = x0, y0
        self.image.setPos(x0, y0)
        self.title.setPos(x0, y0)
        n, h, w = self.shape
        pitch_w = w * self.factor + GAP
        pitch_h = self.lead + h * self.factor + GAP
        widest = max((len(item.toPlainText()) for item in self.labels), default=1)
        every = 1
        if scale > 0:  # about 6 px per character at 7 pt
            every = max(1, math.ceil((6 * widest + 4) / (pitch_w * scale)))
        for k, item in enumerate(self.labels):
            r, c = divmod(k, self.cols)
            item.setPos(x0 + c * pitch_w + w * self.factor / 2,
                        y0 + self.top + r * pitch_h + self.lead)
            item.setVisible((self.every_row or r == 0) and c % every == 0)

    def pixel_at(self, x: float, y: float):
        """View coordinates -> (k, i, j) of the map pixel there, or None."""
        n, h, w = self.shape
        if n == 0:
            return None
        return locate(y - self.y0, x - self.x0, n, h, w, self.cols, self.factor,
                      lead=self.lead, top=self.top)


class MosaicView(pg.ViewBox):
    """A non-interactive, aspect-locked view stacking Sections top to bottom.

    Titles and labels keep a fixed size on screen: ``arrange`` reserves room for them in
    display pixels and picks the column count that makes the tiles largest (or uses
    ``fixed_cols``). It runs again whenever the view is resized. With ``fit_width`` the
    tiles take the whole width and what is taller than the view scrolls (the wheel, or
    ``scroll_to``); ``scrolled`` tells (offset, largest offset, page) in display pixels."""

    TITLE_PX, LABEL_PX, MARGIN_PX = 18, 12, 4
    scrolled = pyqtSignal(int, int, int)

    def __init__(self, max_cols: int = 16, fixed_cols: int | None = None):
        super().__init__(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False,
                         defaultPadding=0.0)
        self.sections: list[Section] = []
        self.max_cols, self.fixed_cols = max_cols, fixed_cols
        self.fit_width = False
        self.scroll_px = 0  # display pixels scrolled down (fit_width only)
        self.scale = 1.0  # display pixels per mosaic pixel, as last arranged
        self.text_color = "#cccccc"
        self.label_color = "#999999"
        self.sigResized.connect(self.arrange)

    def add_section(self, name: str) -> Section:
        section = Section(self, name)
        self.sections.append(section)
        return section

    def clear_sections(self) -> None:
        for s in self.sections:
            for item in [s.image, s.title, *s.labels]:
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

    def _layout(self, shown, cols: int, width_px: float, height_px: float):
        """(scale, band) for ``cols`` columns: display px per mosaic px, label band height."""
        title_px = sum(self.TITLE_PX for s in shown if s.title.toPlainText())
        avail = max(height_px - title_px, 8.0)
        band, scale = 0, 1.0
        for _ in range(3):  # the label band depends on the scale and the scale on it
            w = max(s.size(cols, 0)[1] for s in shown)
            h = sum(s.size(cols, band)[0] for s in shown)
            scale = max(min(width_px / w, avail / h), 1e-3)
            band = math.ceil(self.LABEL_PX / scale)
        return scale, band

    def arrange(self, *_) -> None:
        """Choose columns, stack the sections with room for their text, fit the view."""
        shown = [s for s in self.sections if s.shape[0]]
        rect = self.boundingRect()
        if not shown or rect.width() < 4 or rect.height() < 4:
            return
        width_px = rect.width() - 2 * self.MARGIN_PX
        height_px = rect.height() - 2 * self.MARGIN_PX
        n_max = max(s.shape[0] for s in shown)
        options = [self.fixed_cols] if self.fixed_cols else range(
            1, min(n_max, self.max_cols) + 1)
        best = None
        for cols in options:
            scale, band = self._layout(shown, cols, width_px,
                                       math.inf if self.fit_width else height_px)
            if best is None or scale > best[1] * 1.0001:
                best = (cols, scale, band)
        cols, scale, band = best
        self.scale = scale
        y, width = 0.0, 0
        for s in shown:
            lead, top = s.bands(band)
            if (s.cols, s.lead, s.top) != (cols, lead, top):
                s.cols, s.lead, s.top = cols, lead, top
                s.redraw()
            if s.title.toPlainText():
                y += self.TITLE_PX / scale
            s.place(0.0, y, scale)
            h, w = s.size()
            y += h + 2 / scale
            width = max(width, w)
        m = self.MARGIN_PX / scale
        if not self.fit_width:
            self.setRange(xRange=(-m, width + m), yRange=(-m, y + m), padding=0)
            return
        page = int(rect.height())
        last = max(0, math.ceil((y + 2 * m) * scale) - page)
        self.scroll_px = min(max(0, self.scroll_px), last)
        top = -m + self.scroll_px / scale
        self.setRange(xRange=(-m, width + m), yRange=(top, top + rect.height() / scale),
                      padding=0)
        self.scrolled.emit(self.scroll_px, last, page)

    def scroll_to(self, px: int) -> None:
        """Show the mosaic from ``px`` display pixels down (fit_width; clamped)."""
        if self.fit_width and int(px) != self.scroll_px:
            self.scroll_px = int(px)
            self.arrange()

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - Qt override
        if not self.fit_width:
            ev.ignore()
            return
        self.scroll_to(self.scroll_px - ev.delta() // 2)  # 60 px a notch
        ev.accept()

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
