"""The probe digit: chosen from the test split (by index or at random) or given by the app
(e.g. a drawing), shown as the network sees it: x = pixel / 255 - 0.5."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from convscope.visualizer.mosaic import MosaicView
from convscope.visualizer.theme import Theme, gray_map


class ProbePanel(QWidget):
    """Emits ``index_chosen(int)`` when the user picks a test digit."""

    index_chosen = pyqtSignal(int)

    def __init__(self, parent=None, seed: int = 0):
        super().__init__(parent)
        self._rng = np.random.default_rng(seed)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.setContentsMargins(2, 2, 2, 2)
        self.view = MosaicView(max_cols=1)
        self.section = self.view.add_section("input")
        self.section.configure(1, 28, 28)
        self.section.title.setText("input x = pixel / 255 − 0.5")
        self.graphics.addItem(self.view)
        self.index_spin = QSpinBox()
        self.index_spin.setRange(0, 0)
        self.index_spin.setPrefix("test digit #")
        self.index_spin.setToolTip("Index of the test digit traced through the network")
        self.index_spin.setKeyboardTracking(False)
        self.index_spin.valueChanged.connect(self.index_chosen.emit)
        self.random_button = QPushButton("Random")
        self.random_button.setToolTip("Pick a test digit at random")
        self.random_button.clicked.connect(self._pick_random)
        self.source_label = QLabel("")
        self.source_label.setWordWrap(True)
        self.hover_label = QLabel("Hover a pixel to read it.")
        self.hover_label.setObjectName("hover")
        row = QHBoxLayout()
        row.addWidget(self.index_spin, 1)
        row.addWidget(self.random_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(3)
        layout.addLayout(row)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.source_label)
        layout.addWidget(self.hover_label)
        self.x: np.ndarray | None = None
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse)
        self.setMinimumHeight(150)

    def set_test_count(self, n: int) -> None:
        self.index_spin.blockSignals(True)
        self.index_spin.setRange(0, max(0, n - 1))
        self.index_spin.blockSignals(False)
        self.index_spin.setEnabled(n > 0)
        self.random_button.setEnabled(n > 0)

    def set_index(self, index: int, emit: bool = False) -> None:
        self.index_spin.blockSignals(not emit)
        self.index_spin.setValue(index)
        self.index_spin.blockSignals(False)

    def set_source(self, text: str) -> None:
        self.source_label.setText(text)

    def set_input(self, x: np.ndarray) -> None:
        """x: (28, 28) float, the network's input."""
        x = np.asarray(x, np.float32)
        if self.x is not None and np.array_equal(x, self.x):
            return  # the same digit: nothing to redraw
        self.x = x
        self.section.set_maps(self.x[None], (-0.5, 0.5))

    def _pick_random(self) -> None:
        top = self.index_spin.maximum()
        if top > 0:
            self.index_spin.setValue(int(self._rng.integers(0, top + 1)))

    def _on_mouse(self, pos) -> None:
        hit = self.view.pixel_at(pos)
        if hit is None or self.x is None:
            return
        _, _, i, j = hit
        x = float(self.x[i, j])
        self.hover_label.setText(f"pixel ({i}, {j}): x = {x:+.3f}  (raw {round((x + 0.5) * 255)})")

    def apply_theme(self, theme: Theme) -> None:
        self.graphics.setBackground(theme.plot_bg)
        self.view.set_colors(theme.text, theme.muted)
        self.section.image.setLookupTable(gray_map(theme).getLookupTable(0.0, 1.0, 256))
