"""Every kernel of every conv layer, on a diverging colour map centred on zero.

One row per conv layer: a grid with one column per output filter and one row per input
channel (the (C_in, C_out) kernels of stacked layers), and a colour bar. The scale is shared
by all kernels of a layer and stable: it grows at once when a weight outgrows it and shrinks
only slowly, so colours do not flicker while the network learns.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtWidgets import QLabel, QVBoxLayout, QWidget

from convscope.visualizer.mosaic import MosaicView, set_scale, stepped
from convscope.visualizer.theme import Theme, cached, colormap


class StableScale:
    """A symmetric colour scale: jumps up to a new maximum, decays slowly towards it, and is
    shown in steps of 2% (the colour bar's ticks are laid out again only when it steps)."""

    STEP = 1.02

    def __init__(self, decay: float = 0.03, floor: float = 1e-6):
        self.value: float | None = None
        self.decay, self.floor = decay, floor

    def update(self, peak: float) -> float:
        """The scale to show for weights whose largest magnitude is ``peak``."""
        peak = float(peak) if np.isfinite(peak) else 0.0
        peak = max(peak, self.floor)
        if self.value is None or peak > self.value:
            self.value = peak
        else:
            self.value += self.decay * (peak - self.value)
        return stepped(self.value, self.STEP)

    def reset(self) -> None:
        self.value = None


def kernel_maps(w: np.ndarray) -> np.ndarray:
    """Conv weights (k, k, C_in, C_out) -> maps (C_in * C_out, k, k), input-channel major."""
    k1, k2, c_in, c_out = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 0, 1).reshape(c_in * c_out, k1, k2))


class FiltersPanel(QWidget):
    """``configure(shapes)`` once per architecture, then ``set_weights(params)``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.setContentsMargins(4, 4, 4, 4)
        self.hover_label = QLabel("Hover a kernel weight to read it.")
        self.hover_label.setObjectName("hover")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.hover_label)
        self.rows: list[tuple[str, MosaicView, pg.ColorBarItem, StableScale]] = []
        self._theme: Theme | None = None
        self._shapes: dict | None = None
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse)

    def configure(self, shapes: dict) -> None:
        """shapes: {"conv1.W": (k, k, C_in, C_out), ...} (other keys are ignored)."""
        self.graphics.clear()
        self.rows = []
        convs = [(k, s) for k, s in shapes.items() if k.endswith(".W") and len(s) == 4]
        for r, (key, (k1, k2, c_in, c_out)) in enumerate(convs):
            # a single input map: wrap freely; stacked layers: one column per output filter
            view = MosaicView(max_cols=c_out, fixed_cols=c_out if c_in > 1 else None)
            section = view.add_section(key)
            if c_in == 1:  # label every kernel with its filter number
                labels = [f"{o + 1}" for o in range(c_out)]
            else:  # label the first row: columns are output filters
                labels = [f"{o + 1}" for o in range(c_out)] if c_out <= 32 else None
            section.configure(c_in * c_out, k1, k2, factor=max(1, 12 // k1), labels=labels,
                              every_row=c_in == 1)
            name = key.split(".")[0]
            section.title.setText(f"{name}: {c_out} filters of {k1}×{k2}" if c_in == 1 else
                                  f"{name}: {c_out}×{c_in} kernels {k1}×{k2}")
            bar = pg.ColorBarItem(colorMap=colormap("CET-D1A"), interactive=False, width=12,
                                  colorMapMenu=False)
            bar.setImageItem(section.image)
            cached(bar.axis)
            self.graphics.addItem(view, row=r, col=0)
            self.graphics.addItem(bar, row=r, col=1)
            self.graphics.ci.layout.setRowStretchFactor(r, max(1, c_in))
            self.rows.append((key, view, bar, StableScale()))
        if self._theme is not None:
            self.apply_theme(self._theme)
        for _, view, _, _ in self.rows:
            view.arrange()

    def set_weights(self, params: dict) -> None:
        """params: {"conv1.W": (k, k, C_in, C_out), ...}; other keys are ignored."""
        shapes = {k: v.shape for k, v in params.items() if k.endswith(".W") and v.ndim == 4}
        if shapes != self._shapes:
            self.configure(shapes)
            self._shapes = shapes
        for key, view, bar, scale in self.rows:
            w = params[key]
            s = scale.update(np.abs(w).max())
            view.sections[0].set_maps(kernel_maps(w), (-s, s))
            set_scale(bar, s)

    def reset_scales(self) -> None:
        """A new run: the colour scales start again from its own weights."""
        for _, _, _, scale in self.rows:
            scale.reset()

    def _on_mouse(self, pos) -> None:
        for key, view, _, _ in self.rows:
            hit = view.pixel_at(pos)
            if hit is None:
                continue
            section, k, i, j = hit
            maps = section.last_maps
            c_out = int(self._shapes[key][3])
            c_in_idx, out_idx = divmod(k, c_out)
            name = key.split(".")[0]
            value = float(maps[k, i, j]) if maps is not None else float("nan")
            where = f"input map {c_in_idx + 1}, " if section.shape[0] > c_out else ""
            self.hover_label.setText(f"{name} filter {out_idx + 1}, {where}weight ({i}, {j}) "
                                     f"= {value:+.4f}")
            return

    def apply_theme(self, theme: Theme) -> None:
        self._theme = theme
        self.graphics.setBackground(theme.plot_bg)
        for _, view, bar, _ in self.rows:
            view.set_colors(theme.text, theme.muted)
            bar.setColorMap(colormap(theme.diverging))
            bar.axis.setPen(pg.mkPen(theme.muted))
            bar.axis.setTextPen(pg.mkPen(theme.text))
