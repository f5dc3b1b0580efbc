"""The Inspector's stage cards: one stage of a traced step (or a weight's before / after /
change) as a titled card of cell grids that wraps to the room it is given."""
from __future__ import annotations

import math

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import QFrame, QGridLayout, QLabel, QSizePolicy, QVBoxLayout

from convscope.visualizer.cell_grid import CellGrid
from convscope.visualizer.inspector_stages import Stage

CARD_PAD = 14  # a stage card's margins and border, left and right together
NUMBER_CELL = 36  # the narrowest cell that still shows its number


def _summary(stage: Stage) -> str:
    m = stage.layout.maps
    vals = m[np.isfinite(m)]
    if vals.size <= 10 or stage.style == "mask":
        return ""
    nz = int(np.count_nonzero(vals))
    text = f"min {vals.min():.4g}   max {vals.max():.4g}"
    if nz < 0.9 * vals.size:
        text += f"   {nz} of {vals.size} non-zero"
    return text


def _cell(stage: Stage, compact: bool) -> tuple:
    """(width, height) of one cell: the stage's own, or about two thirds when room is short
    (cells with numbers keep room for them)."""
    w, h = stage.cell
    if not compact:
        return w, h
    if stage.numbers:
        return max(44, round(w * 0.85)), max(19, round(h * 0.85))
    return max(min(w, 2), round(w * 2 / 3)), max(min(h, 2), round(h * 2 / 3))


def _cols(stage: Stage, cell_w: int, width: int) -> int:
    """Tiles per row: a compact block (8 maps as 2 rows of 4), fewer when ``width`` pixels are
    short (never for class rows or input-channel rows, whose rows mean something)."""
    lay = stage.layout
    if lay.row_labels:
        return lay.cols
    n, _, w = lay.maps.shape
    cols = min(lay.cols, math.ceil(math.sqrt(2 * n)))
    return max(1, min(cols, width // (w * cell_w + 4)))


def _grid_width(stage: Stage, compact: bool, width: int) -> int:
    cell = _cell(stage, compact)[0]
    cols = min(_cols(stage, cell, width), stage.layout.maps.shape[0])
    return cols * (stage.layout.maps.shape[2] * cell + 4) + \
        (22 if stage.layout.row_labels else 0)


def _per_row(stages: list[Stage], width: int = 720, compact: bool = False) -> int:
    """How many grids of a group fit side by side in ``width`` pixels."""
    one = max(150, _grid_width(stages[0], compact, width))
    return max(1, min(len(stages), (width - 20) // (one + 18)))


class StageCard(QFrame):
    """One stage, or a weight's before / after / change: title, formula, grid(s), summary."""

    def __init__(self, stages: list[Stage], on_click, width: int = 640, compact: bool = False,
                 parent=None):
        super().__init__(parent)
        self.setObjectName("stageCard")
        self.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)
        self.keys = [s.key for s in stages]
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 5, 6, 5)
        layout.setSpacing(3)
        self.title_label = QLabel()
        self.title_label.setTextFormat(Qt.PlainText)
        bold = QFont(self.font())
        bold.setBold(True)
        self.title_label.setFont(bold)
        self.note_label = QLabel()
        self.note_label.setObjectName("muted")
        for label in (self.title_label, self.note_label):
            label.setWordWrap(True)
            layout.addWidget(label)
        grouped = len(stages) > 1
        width -= CARD_PAD
        row = QGridLayout()
        row.setHorizontalSpacing(18)
        row.setVerticalSpacing(6)
        self.per_row = per_row = _per_row(stages, width, compact)
        self.grids: dict[str, CellGrid] = {}
        self.captions: dict[str, QLabel] = {}
        self.summaries: dict[str, QLabel] = {}
        for n, s in enumerate(stages):
            box = QVBoxLayout()
            box.setSpacing(2)
            if grouped:
                cap = QLabel()
                cap.setObjectName("caption")
                self.captions[s.key] = cap
                box.addWidget(cap)
            grid = CellGrid()
            grid.clicked.connect(lambda k, i, j, key=s.key: on_click(key, k, i, j))
            self.grids[s.key] = grid
            box.addWidget(grid)
            summary = QLabel()
            summary.setObjectName("muted")
            summary.setWordWrap(True)
            self.summaries[s.key] = summary
            box.addWidget(summary)
            box.addStretch(1)
            row.addLayout(box, n // per_row, n % per_row)
        row.setColumnStretch(per_row, 1)
        layout.addLayout(row)

    def update_stages(self, stages: list[Stage], luts: dict, width: int = 640,
                      compact: bool = False) -> None:
        """Redraw from ``stages``; tiles wrap to fit a card ``width`` pixels wide (not class
        rows), cells shrink when ``compact`` or when still too wide."""
        width -= CARD_PAD
        first = stages[0]
        if first.group:
            self.title_label.setText(f"{first.group}: before and after the step")
            self.note_label.setText(f"{stages[1].note[len('after '):]};  change = after - "
                                    "before" if len(stages) > 1 else first.note)
        else:
            self.title_label.setText(first.title)
            self.note_label.setText(first.note)
        for s in stages:
            lay = s.layout
            cell = _cell(s, compact)
            cols = _cols(s, cell[0], width)
            room = width - (40 if lay.row_labels else 0)
            if cols * (lay.maps.shape[2] * cell[0] + 4) > room:  # still too wide: shrink
                c = max(1, (room // cols - 4) // lay.maps.shape[2])
                cell = (max(c, NUMBER_CELL), cell[1]) if s.numbers else (c, c)
            grid = self.grids[s.key]
            grid.gap = 4
            grid.set_data(lay.maps, luts[s.style], s.levels, numbers=s.numbers,
                          tile_labels=lay.tile_labels, row_labels=lay.row_labels,
                          col_labels=lay.col_labels, window=s.window,
                          cell=cell[0], cell_h=cell[1], cols=cols)
            if s.key in self.captions:
                self.captions[s.key].setText(s.key.rsplit(":", 1)[1])
            summary = _summary(s)
            self.summaries[s.key].setText(summary)
            self.summaries[s.key].setVisible(bool(summary))
            self.summaries[s.key].setFixedWidth(max(150, grid.sizeHint().width()))
        widths = [max(150, self.grids[s.key].sizeHint().width()) for s in stages]
        rows = [widths[i:i + self.per_row] for i in range(0, len(widths), self.per_row)]
        inner = max(sum(r) + 18 * (len(r) - 1) for r in rows)
        for label in (self.title_label, self.note_label):
            label.setFixedWidth(inner)
