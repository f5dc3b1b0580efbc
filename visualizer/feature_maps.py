"""The probe digit's feature maps, pooled maps and pooling argmax masks.

From a probe trace (``Trainer.probe_trace()``) this panel shows, top to bottom, every conv layer's
maps (after its ReLU when there is one: what pooling sees) and the pooled maps below them, each
pooled cell drawn as large as the window it summarises so it lines up with it. For max and min
pooling, the pixels that lost their window are dimmed: the bright pixels are the winners, the
only places gradient flows back to. A conv layer and its pooled maps share one colour scale,
symmetric around zero.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QColor
from PyQt5.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from convscope.engine.net.names import mask_key
from convscope.visualizer.mosaic import MosaicView, set_title, stepped
from convscope.visualizer.theme import Theme, colormap

PEAK_STEP = 1.05  # the maps' colour scale moves in steps of 5%
DIM_ALPHA = 120  # how strongly pixels that lost their pooling window are dimmed


def map_layers(layers: list) -> list[str]:
    """Names of the maps to show, in order: each conv layer (or the ReLU after it: what
    pooling sees) and each pooling layer. ``layers``: [(name, kind, output shape)] as
    ``layer_info`` gives them."""
    shown = []
    for i, (name, kind, shape) in enumerate(layers):
        following = layers[i + 1][1] if i + 1 < len(layers) else ""
        if len(shape) != 3 or kind not in ("conv", "relu", "pool"):
            continue
        if kind == "conv" and following == "relu":
            continue  # the ReLU's output stands for its conv layer
        shown.append(name)
    return shown


def colour_maps(maps: np.ndarray, peak: float, lut: np.ndarray) -> np.ndarray:
    """maps (C, H, W) float -> RGBA uint8 (C, H, W, 4) through ``lut`` (256, 4) uint8 over
    -peak..peak (as an ImageItem with these levels would colour them)."""
    index = np.clip((maps + peak) * np.float32(128 / peak), 0, 255).astype(np.uint8)
    return lut[index]


def dim_losers(rgba: np.ndarray, mask: np.ndarray, color: str,
               alpha: int = DIM_ALPHA) -> None:
    """Blend ``color`` with opacity alpha/255 over the pixels of rgba (C, H, W, 4) where
    mask (H, W, C) is False (those that lost their pooling window), in place."""
    c = QColor(color)
    a = alpha / 255
    rgb = rgba[..., :3]
    dimmed = rgb * np.float32(1 - a) + np.array([c.red(), c.green(), c.blue()], np.float32) * a
    np.copyto(rgb, (dimmed + 0.5).astype(np.uint8), where=~mask.transpose(2, 0, 1)[..., None])


class FeatureMapsPanel(QWidget):
    """``set_architecture(layers, config)`` after a Reset, then ``set_trace(trace)`` at each
    repaint."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.view = MosaicView(max_cols=16)
        self.graphics.addItem(self.view, row=0, col=0)
        self.graphics.ci.setContentsMargins(2, 2, 2, 2)
        self.masks_box = QCheckBox("Show pooling winners")
        self.masks_box.setChecked(True)
        self.masks_box.setToolTip("Dim every pixel that lost its pooling window: the bright "
                                  "ones are where the gradient flows back to.")
        self.masks_box.toggled.connect(lambda _: self._draw())
        self.hover_label = QLabel("Hover a pixel to read its value.")
        self.hover_label.setObjectName("hover")
        self.hover_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        bottom = QHBoxLayout()
        bottom.addWidget(self.hover_label, 1)
        bottom.addWidget(self.masks_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.graphics, 1)
        layout.addLayout(bottom)
        self.pools: dict[str, dict] = {}  # pool layer name -> its config entry
        self.kinds: dict[str, str] = {}  # layer name -> its kind
        self.shown: list[str] = []  # the maps the architecture has, in order
        self.names: list[str] = []
        self.trace: dict | None = None
        self._signature = None
        self._theme: Theme | None = None
        self._lut = np.zeros((256, 4), np.uint8)  # the diverging colour map, RGBA
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse)

    def set_architecture(self, layers: list, config: dict) -> None:
        """layers: the run's [(name, kind, output shape)] (RunInfo.layers); config: its specs."""
        self.kinds = {name: kind for name, kind, _ in layers}
        self.pools = {name: spec for (name, kind, _), spec in zip(layers, config["layers"],
                                                                  strict=True) if kind == "pool"}
        self.shown = map_layers(layers)
        self._signature = None

    def set_trace(self, trace: dict) -> None:
        """trace: the probe digit's trace (arrays with a leading batch axis of 1)."""
        self.trace = trace
        names = [name for name in self.shown if name in trace]
        signature = tuple((n, trace[n].shape) for n in names)
        if signature != self._signature:
            self._configure(names)
            self._signature = signature
        self._draw()

    def _configure(self, names: list[str]) -> None:
        self.view.clear_sections()
        self.names = names
        base = self.trace[names[0]].shape[1] if names else 1
        for name in names:
            _, h, w, c = self.trace[name].shape
            section = self.view.add_section(name)
            labels = [str(k + 1) for k in range(c)] if c <= 64 else None
            section.configure(c, h, w, factor=max(1, round(base / h)), labels=labels)
        if self._theme is not None:
            self.apply_theme(self._theme)
        self.view.arrange()

    def _title(self, name: str, c: int, h: int, w: int, peak: float) -> str:
        if self.kinds.get(name) == "pool":
            spec = self.pools.get(name, {})
            mode = spec.get("mode", "max")
            size = spec.get("size", 2)
            return f"{name}: {mode} of each {size}×{size} window → {c} maps {h}×{w}"
        label = name
        if self.kinds.get(name) == "relu":  # the conv layer just before it, and its ReLU
            before = list(self.kinds)[list(self.kinds).index(name) - 1]
            label = f"{before} + ReLU"
        return f"{label}: {c} feature maps {h}×{w}   (colour scale ±{peak:.3g})"

    def _draw(self) -> None:
        trace = self.trace
        if trace is None or not self.names:
            return
        peak = 1.0
        for section, name in zip(self.view.sections, self.names, strict=True):
            maps = trace[name][0]  # (H, W, C)
            if self.kinds.get(name) != "pool":  # a conv layer sets the scale of its group
                finite = np.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0)
                peak = stepped(max(float(np.abs(finite).max()), 1e-6), PEAK_STEP)
            h, w, c = maps.shape
            set_title(section.title, self._title(name, c, h, w, peak))
            # coloured here, winners and losers in one image: one item to draw, not two
            rgba = colour_maps(maps.transpose(2, 0, 1), peak, self._lut)
            pool = self._pool_after(name)
            mask = trace.get(mask_key(pool)) if pool else None
            if mask is not None and self.masks_box.isChecked() and self._theme is not None:
                dim_losers(rgba, mask[0], self._theme.plot_bg)
            section.set_rgba(rgba, maps.transpose(2, 0, 1))

    def _pool_after(self, name: str) -> str | None:
        i = self.names.index(name)
        if i + 1 < len(self.names) and self.kinds.get(self.names[i + 1]) == "pool":
            return self.names[i + 1]
        return None

    # ---- hover ---------------------------------------------------------------------------
    def describe(self, name: str, k: int, i: int, j: int) -> str:
        """The hover text for pixel (i, j) of map k of layer ``name``."""
        trace = self.trace
        value = float(trace[name][0, i, j, k])
        text = f"{name} map {k + 1}, pixel ({i}, {j}) = {value:+.4f}"
        if self.kinds.get(name) == "pool":
            spec = self.pools.get(name, {})
            size, stride = spec.get("size", 2), spec.get("stride", 2)
            src = self.names[self.names.index(name) - 1]
            r0, c0 = i * stride, j * stride
            text += f", from the {size}×{size} window at rows {r0}–{r0 + size - 1}, " \
                    f"cols {c0}–{c0 + size - 1} of {src}"
            mask = trace.get(mask_key(name))
            if mask is not None:
                window = mask[0, r0:r0 + size, c0:c0 + size, k]
                wi, wj = np.argwhere(window)[0]
                win_value = float(trace[src][0, r0 + wi, c0 + wj, k])
                text += f"; winner ({r0 + wi}, {c0 + wj}) = {win_value:+.4f}"
            else:
                text += " (the average of all four)"
            return text
        pool = self._pool_after(name)
        mask = trace.get(mask_key(pool)) if pool else None
        if mask is not None:
            stride = self.pools.get(pool, {}).get("stride", 2)
            won = bool(mask[0, i, j, k])
            text += (f" — wins its window → {pool} ({i // stride}, {j // stride})" if won
                     else " — lost its window: no gradient flows here")
        return text

    def _on_mouse(self, pos) -> None:
        if self.trace is None:
            return
        hit = self.view.pixel_at(pos)
        if hit is not None:
            section, k, i, j = hit
            self.hover_label.setText(self.describe(section.name, k, i, j))

    def apply_theme(self, theme: Theme) -> None:
        self._theme = theme
        self.graphics.setBackground(theme.plot_bg)
        self.view.set_colors(theme.text, theme.muted)
        self._lut = colormap(theme.diverging).getLookupTable(0.0, 1.0, 256, alpha=True)
        self._draw()
