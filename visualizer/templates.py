"""The output layer's weights as class templates, one per class.

For the seed net the dense layer sees the pooled maps (13x13x8): its weights (1352, 10) are,
for each class, one 13x13 image per pooled channel showing where that channel's activity votes
for (red) or against (blue) the class. Columns are classes, rows are channels. When the last
dense layer's input is not a map (lenet's hidden layer), its matrix is shown as one image,
one row per class.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtWidgets import QLabel, QVBoxLayout, QWidget

from convscope.visualizer.filters import StableScale
from convscope.visualizer.mosaic import MosaicView, set_scale
from convscope.visualizer.probs import short_name
from convscope.visualizer.theme import Theme, cached, colormap


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
        self.hover_label = QLabel("Hover a weight to read it.")
        self.hover_label.setObjectName("hover")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.hover_label)
        self.scale = StableScale()
        self.key: str | None = None
        self.spatial_shape: tuple | None = None
        self.class_names = [str(k) for k in range(10)]
        self._signature = None
        self._theme: Theme | None = None
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
        self.section.set_maps(maps, (-s, s))
        set_scale(self.bar, s)

    def _configure(self, key: str, maps: np.ndarray, cols: int, shape) -> None:
        self.key, self.spatial_shape = key, shape
        self.scale.reset()
        n, h, w = maps.shape
        self.view.fixed_cols = cols
        layer = key.split(".")[0]
        if cols > 1:
            labels = [short_name(c, 5) for c in self.class_names]
            factor = max(1, 14 // h)
            title = f"{layer}: classes × input maps"
        else:
            labels, factor = None, max(1, 4)
            title = f"{layer}: classes × hidden units"
        self.section.configure(n, h, w, factor=factor, labels=labels, every_row=False)
        self.section.title.setText(title)
        if self._theme is not None:
            self.apply_theme(self._theme)
        self.view.arrange()

    def _on_mouse(self, pos) -> None:
        hit = self.view.pixel_at(pos)
        if hit is None or self.section.last_maps is None:
            return
        _, k, i, j = hit
        value = float(self.section.last_maps[k, i, j])
        layer = (self.key or "").split(".")[0]
        if self.spatial_shape is not None:
            c, cls = divmod(k, len(self.class_names))
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
