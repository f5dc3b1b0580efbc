"""The output layer's weights as class templates, one per class.

For the seed net the dense layer sees the pooled maps (13x13x8): its weights (1352, 10) are,
for each class, one 13x13 image per pooled channel showing where that channel's activity votes
for (red) or against (blue) the class. Columns are classes, rows are channels. When the last
dense layer's input is not a map (lenet's hidden layer), its matrix is shown as one image,
one row per class.

Many classes (26 letters, EMNIST's 62) would make the columns a few pixels wide: when a
column would be narrower than MIN_TILE_PX, the classes are shown in groups of as many as
fit, one group under the other, each with its class names, and the panel scrolls.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QHBoxLayout, QLabel, QScrollBar, QVBoxLayout, QWidget

from convscope.visualizer.filters import StableScale
from convscope.visualizer.mosaic import GAP, MosaicView, set_scale
from convscope.visualizer.probs import short_name
from convscope.visualizer.theme import Theme, cached, colormap

MIN_TILE_PX = 18  # the narrowest a class's column of maps is drawn (display pixels)


def flatten_source_shape(trace: dict) -> tuple | None:
    """(H, W, C) of the map that feeds the flatten layer, from a probe trace."""
    last = None
    for key, value in trace.items():
        if key == "flatten":
            return last
        if "." not in key and getattr(value, "ndim", 0) == 4:
            last = tuple(value.shape[1:])
    return None


def template_maps(w: np.ndarray, shape: tuple | None) -> tuple[np.ndarray, int]:
    """Dense weights (n_in, classes) -> (maps, columns). Spatial input (H, W, C): maps
    (C * classes, H, W), channel-major, a column per class. Otherwise one map (1, classes,
    n_in)."""
    n_in, n_out = w.shape
    if shape is not None and int(np.prod(shape)) == n_in:
        h, wd, c = shape
        maps = w.reshape(h, wd, c, n_out).transpose(2, 3, 0, 1).reshape(c * n_out, h, wd)
        return np.ascontiguousarray(maps), n_out
    return np.ascontiguousarray(w.T[None]), 1


def class_groups(classes: int, tile: int, width_px: float) -> int:
    """Classes a row of maps may hold: all of them when each column (``tile`` mosaic pixels
    wide) is at least MIN_TILE_PX across ``width_px``, else groups of about equal size."""
    widest = max(1, int((width_px * tile / MIN_TILE_PX + GAP) // (tile + GAP)))
    if widest >= classes:
        return classes
    groups = -(-classes // widest)
    return -(-classes // groups)


def grouped(maps: np.ndarray, classes: int, per_group: int) -> list[np.ndarray]:
    """(C * classes, h, w) channel-major maps -> one (C * per_group, h, w) per group of
    classes, the last padded with NaN (drawn empty)."""
    _, h, w = maps.shape
    by_class = maps.reshape(-1, classes, h, w)
    out = []
    for start in range(0, classes, per_group):
        part = by_class[:, start:start + per_group]
        if part.shape[1] < per_group:
            pad = np.full((part.shape[0], per_group - part.shape[1], h, w), np.nan, maps.dtype)
            part = np.concatenate([part, pad], axis=1)
        out.append(part.reshape(-1, h, w))
    return out


class TemplatesPanel(QWidget):
    """``set_weights(params, trace)`` at each repaint."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.setContentsMargins(2, 2, 2, 2)
        self.view = MosaicView(max_cols=10, fixed_cols=10)
        self.section = self.view.add_section("templates")
        self.bar = pg.ColorBarItem(colorMap=colormap("CET-D1A"), interactive=False, width=12,
                                   colorMapMenu=False)
        self.bar.setImageItem(self.section.image)
        cached(self.bar.axis)
        self.graphics.addItem(self.view, row=0, col=0)
        self.graphics.addItem(self.bar, row=0, col=1)
        self.scroll_bar = QScrollBar(Qt.Vertical)  # shown when the groups are taller
        self.scroll_bar.setVisible(False)
        self.scroll_bar.valueChanged.connect(self.view.scroll_to)
        self.view.scrolled.connect(self._on_scrolled)
        self.view.sigResized.connect(self._regroup)
        self.hover_label = QLabel("Hover a weight to read it.")
        self.hover_label.setObjectName("hover")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.graphics, 1)
        side = QVBoxLayout()
        side.setContentsMargins(0, 20, 0, 0)  # below the panel's "?" button
        side.addWidget(self.scroll_bar)
        row.addLayout(side)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addLayout(row, 1)
        layout.addWidget(self.hover_label)
        self.scale = StableScale()
        self.key: str | None = None
        self.spatial_shape: tuple | None = None
        self.class_names = [str(k) for k in range(10)]
        self.per_group = 10  # classes in one row of maps (all of them when they fit)
        self._signature = None
        self._theme: Theme | None = None
        self._maps: tuple | None = None  # (maps, cols, levels) last shown
        self._shape: tuple | None = None  # (shape of the maps, classes) configured
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse)

    def set_classes(self, names) -> None:
        self.class_names = list(names)
        self._signature = None

    def reset_scales(self) -> None:
        """A new run: the colour scale starts again from its own weights."""
        self.scale.reset()

    def set_weights(self, params: dict, trace: dict | None) -> None:
        dense = [k for k in params if k.startswith("dense") and k.endswith(".W")]
        if not dense:
            return
        key = dense[-1]
        shape = flatten_source_shape(trace) if trace else None
        w = params[key]
        maps, cols = template_maps(w, shape)
        signature = (key, w.shape, maps.shape, tuple(self.class_names))
        if signature != self._signature:
            self._configure(key, maps, cols, shape if cols > 1 else None)
            self._signature = signature
        s = self.scale.update(np.abs(w).max())
        self._maps = (maps, cols, (-s, s))
        self._show()
        set_scale(self.bar, s)

    def _show(self) -> None:
        maps, cols, levels = self._maps
        parts = grouped(maps, cols, self.per_group) if cols > 1 else [maps]
        for section, part in zip(self.view.sections, parts, strict=True):
            section.set_maps(part, levels)

    def _configure(self, key: str, maps: np.ndarray, cols: int, shape) -> None:
        self.key, self.spatial_shape = key, shape
        self.scale.reset()
        self._maps = None
        self._shape = (maps.shape, cols)
        self._sections(maps.shape, cols)

    def _sections(self, shape: tuple, cols: int) -> None:
        """One section of maps (or one per group of classes when they do not fit across)."""
        n, h, w = shape
        layer = (self.key or "").split(".")[0]
        if cols > 1:
            factor = max(1, 14 // h)
            width = self.view.boundingRect().width() - 2 * self.view.MARGIN_PX
            self.per_group = class_groups(cols, w * factor, width) if width > 0 else cols
        else:
            factor, self.per_group = 4, 1
        self.view.clear_sections()
        for start in range(0, max(cols, 1), self.per_group):
            section = self.view.add_section(f"templates {start}")
            if cols > 1:
                names = self.class_names[start:start + self.per_group]
                labels = [short_name(c, 5) for c in names]
                labels += [""] * (self.per_group - len(labels))
                section.configure(self.per_group * (n // cols), h, w, factor=factor,
                                  labels=labels, every_row=False)
            else:
                section.configure(n, h, w, factor=factor)
        self.section = self.view.sections[0]
        grouped_ = len(self.view.sections) > 1  # narrower: the title must fit one group
        self.section.title.setText(f"{layer}: classes × {'' if grouped_ else 'input '}maps"
                                   if cols > 1 else f"{layer}: classes × hidden units")
        self.bar.setImageItem([s.image for s in self.view.sections])
        self.view.fixed_cols = self.per_group if cols > 1 else 1
        self.view.fit_width = grouped_
        self.view.scroll_px = 0
        if self._theme is not None:
            self.apply_theme(self._theme)
        self.view.arrange()

    def _regroup(self, *_) -> None:
        """The view was resized: as many classes in a row as fit now."""
        if self.spatial_shape is None or self._shape is None:
            return
        shape, cols = self._shape
        width = self.view.boundingRect().width() - 2 * self.view.MARGIN_PX
        h, w = shape[1:]
        if width > 0 and class_groups(cols, w * max(1, 14 // h), width) != self.per_group:
            self._sections(shape, cols)
            if self._maps is not None:
                self._show()

    def _on_scrolled(self, offset: int, last: int, page: int) -> None:
        self.scroll_bar.blockSignals(True)
        self.scroll_bar.setRange(0, last)
        self.scroll_bar.setPageStep(max(1, page))
        self.scroll_bar.setSingleStep(max(1, page // 8))
        self.scroll_bar.setValue(offset)
        self.scroll_bar.blockSignals(False)
        self.scroll_bar.setVisible(last > 0)

    def _on_mouse(self, pos) -> None:
        hit = self.view.pixel_at(pos)
        if hit is None or hit[0].last_maps is None:
            return
        section, k, i, j = hit
        value = float(section.last_maps[k, i, j])
        layer = (self.key or "").split(".")[0]
        if self.spatial_shape is not None:
            c, col = divmod(k, self.per_group)
            cls = self.view.sections.index(section) * self.per_group + col
            if cls >= len(self.class_names):
                return
            text = (f"{layer}: class {self.class_names[cls]}, input map {c + 1}, "
                    f"pixel ({i}, {j}) weight = {value:+.5f}")
        else:
            text = f"{layer}: class {self.class_names[i]}, hidden unit {j} weight = {value:+.5f}"
        self.hover_label.setText(text)

    def apply_theme(self, theme: Theme) -> None:
        self._theme = theme
        self.graphics.setBackground(theme.plot_bg)
        self.view.set_colors(theme.text, theme.muted)
        self.bar.setColorMap(colormap(theme.diverging))
        self.bar.axis.setPen(pg.mkPen(theme.muted))
        self.bar.axis.setTextPen(pg.mkPen(theme.text))
