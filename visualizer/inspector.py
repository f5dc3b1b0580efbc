"""The Inspector: one sample's forward and backward pass, number by number.

After a single-sample step (a ``StepTrace`` from ``engine.explain.traced_step``) it shows the
pass in order, each stage a picture with its numbers, in the design notes' names: forward
(input -> conv -> pooled with argmax masks -> flattened -> logits t -> softmax out -> loss),
backward (dL/dout, dout/dt, dL/dt, dL/dw, dL/db, dL/dinput, the pool-routed gradient,
dL/dfilters) and the update (w -= lr * dL/dw: before, after, change). Clicking a cell shows
its arithmetic with the actual numbers (``engine.explain``) and outlines the cells it came
from. The stages are drawn as cards (``stage_cards.py``); the gradient check of the sample runs
on a pool thread, never on the GUI thread (``gradient_check.py``); the view can leave its tab
for a window of its own (``pop_out.py``).
"""
from __future__ import annotations

import html

import numpy as np
from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QFontDatabase
from PyQt5.QtWidgets import (
    QBoxLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from convscope.engine.net.model import Model
from convscope.engine.tools.explain import Explanation, StepTrace
from convscope.visualizer import theme as themes
from convscope.visualizer.cell_grid import CellGrid
from convscope.visualizer.gradient_check import GradientCheck
from convscope.visualizer.inspector_stages import SECTIONS, Stage, build_stages
from convscope.visualizer.pop_out import PopOut
from convscope.visualizer.stage_cards import StageCard

SIDE_MIN = 240  # the arithmetic column beside the stages: about 26 characters, at least
STAGE_ROOM = 520  # what the stages keep of a wide view first: two map cards side by side


def _column(*widgets) -> QWidget:
    """``widgets`` one above the other, without margins."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w)
    return box


class InspectorView(QWidget):
    """Shows a StepTrace; ``select(key, index)`` explains one cell (clicks call it)."""

    cell_selected = pyqtSignal(str, object)  # stage key, element index

    def __init__(self, parent=None):
        super().__init__(parent)
        self.step_trace: StepTrace | None = None
        self.model: Model | None = None
        self.stages: dict[str, Stage] = {}
        self.cards: list[StageCard] = []
        self.grids: dict[str, CellGrid] = {}
        self.selection: tuple = ("loss", (0,))
        self.explanation: Explanation | None = None
        self.gradcheck = GradientCheck(self)  # its button, status and table are laid out here
        self.gradcheck.finished.connect(self._gradcheck_finished)
        self.theme = themes.DARK
        self._build()
        self.apply_theme(themes.DARK)

    def _build(self) -> None:
        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        mono.setFamily("DejaVu Sans Mono")  # falls back to the system's fixed font
        mono.setStyleHint(QFont.Monospace)
        mono.setPointSizeF(9)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.content = QWidget()
        self.content_layout = QVBoxLayout(self.content)
        self.content_layout.setContentsMargins(6, 6, 6, 6)
        self.content_layout.setSpacing(6)
        self.placeholder = QLabel("Press Step one sample (Right arrow): that sample's forward "
                                  "and backward pass appears here, number by number.")
        self.placeholder.setWordWrap(True)
        self.content_layout.addWidget(self.placeholder)
        self.content_layout.addStretch(1)
        self.scroll.setWidget(self.content)

        self.header_label = QLabel("No step yet")
        self.header_label.setWordWrap(True)
        self.header_label.setTextFormat(Qt.RichText)
        self.arithmetic_label = QLabel("Arithmetic: click any cell")
        self.arithmetic_label.setObjectName("sideTitle")
        self.arithmetic_text = QPlainTextEdit()
        self.arithmetic_text.setReadOnly(True)
        self.arithmetic_text.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.arithmetic_text.setFont(mono)
        self.window_button = QPushButton()
        self.window_button.setToolTip("More room for the pass: the inspector in a window of "
                                      "its own (close it to put it back)")
        self.pop_out = PopOut(self, self.window_button, "ConvScope: Inspector", "inspector")
        self.reading = _column(self.header_label, self.arithmetic_label, self.arithmetic_text)
        self.reading.layout().setStretch(2, 1)
        g = self.gradcheck
        self.checking = _column(g.button, self.window_button, g.status, g.table)
        self.checking.layout().addStretch(1)
        side = QWidget()
        self.side_layout = QBoxLayout(QBoxLayout.TopToBottom, side)
        self.side_layout.setContentsMargins(6, 6, 6, 6)
        self.side_layout.addWidget(self.reading, 1)
        self.side_layout.addWidget(self.checking)
        side.setMinimumWidth(200)

        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(self.scroll)
        self.splitter.addWidget(side)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setSizes([900, 320])
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(60)
        self._fit_timer.timeout.connect(self._fit)
        self.splitter.splitterMoved.connect(lambda *_: self._fit_timer.start())  # re-wrap
        self._width = 640  # pixels the stage cards may use
        self.compact = True  # cells about two thirds of their size while room is short
        self._rows: list[QWidget] = []  # section titles and rows of cards, in order
        self._fitted = 0  # the length the splitter was last sized for

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_timer.start()

    def _fit(self) -> None:
        """The arithmetic a column on the right (below the stages, beside the buttons, when
        the view is narrow); the stage cards flow into rows that fit the rest."""
        wide = self.width() >= 740  # room for two map cards beside the arithmetic
        orientation = Qt.Horizontal if wide else Qt.Vertical
        total = self.width() if wide else self.height()
        if self.splitter.orientation() != orientation or abs(total - self._fitted) > 40:
            self._fitted = total  # sized again when the room changes a lot
            self.splitter.setOrientation(orientation)
            self._arrange_side(wide)
            side = max(SIDE_MIN, min(440, int(total * 0.34), total - STAGE_ROOM)) if wide else \
                max(200, int(total * 0.36), min(self._checking_height(), int(total * 0.6)))
            self.splitter.setSizes([total - side, side])
        self.checking.setMaximumWidth(16777215 if wide else  # narrow: beside the arithmetic
                                      max(160, min(250, self.width() * 2 // 5)))
        self.side_layout.activate()  # the arithmetic's new width, now
        if self.explanation is not None:  # re-wrap the arithmetic to the new width
            self.arithmetic_text.setPlainText(self.explanation.text(self._text_columns()))
        width = self._room()
        if abs(width - self._width) > 8:
            self._width = width
            if self.step_trace is not None:
                self._rebuild_cards(list(self.stages.values()))
                self._refresh_cards()
                self.select(*self.selection)

    def _arrange_side(self, wide: bool) -> None:
        """Wide: the step, the arithmetic, then the buttons, one above the other. Narrow (the
        side below the stages): the arithmetic on the left, the step and buttons beside it."""
        self.header_label.parentWidget().layout().removeWidget(self.header_label)
        (self.reading if wide else self.checking).layout().insertWidget(0, self.header_label)
        self.header_label.show()
        self.side_layout.setDirection(QBoxLayout.TopToBottom if wide else
                                      QBoxLayout.LeftToRight)

    def _checking_height(self) -> int:
        """Height the step, the buttons and the check's result need (narrow: beside the
        arithmetic), margins included."""
        h = self.checking.heightForWidth(self.checking.width())
        return (h if h > 0 else self.checking.sizeHint().height()) + 12

    def _room(self) -> int:
        """Pixels of width the stage cards may use, the scroll bar counted in whether it
        shows yet or not; sets ``compact`` for short room."""
        bar = self.scroll.verticalScrollBar()
        width = self.scroll.viewport().width() - (0 if bar.isVisible() else bar.sizeHint().width())
        margins = self.content_layout.contentsMargins()
        width = max(200, width - margins.left() - margins.right())
        self.compact = width < 860
        return width

    # ---- theme --------------------------------------------------------------------------
    def apply_theme(self, theme) -> None:
        self.theme = theme
        gray = np.zeros((256, 4), np.uint8)
        lo, hi = QColor(theme.gray[0]), QColor(theme.gray[1])
        for c, (a, b) in enumerate([(lo.red(), hi.red()), (lo.green(), hi.green()),
                                    (lo.blue(), hi.blue())]):
            gray[:, c] = np.linspace(a, b, 256).astype(np.uint8)
        gray[:, 3] = 255
        mask = gray.copy()  # losers in the background colour, winners in the accent
        mask[:128, :3] = QColor(theme.base).getRgb()[:3]
        mask[128:, :3] = QColor(theme.accent).getRgb()[:3]
        self.luts = {"diverging": themes.lut(theme.diverging), "gray": gray, "mask": mask}
        self.setStyleSheet(
            f"QFrame#stageCard {{ border: 1px solid {theme.muted}; border-radius: 4px; }}"
            f"QLabel#muted {{ color: {theme.muted}; }}"
            f"QLabel#caption {{ color: {theme.text}; font-weight: bold; }}"
            f"QLabel#sectionTitle {{ font-weight: bold; font-size: 13pt; }}"
            f"QLabel#sideTitle {{ font-weight: bold; font-size: 11pt; }}")
        for grid in self.grids.values():
            grid.set_colors(theme.text, theme.muted, theme.accent)
        self.gradcheck.theme = theme
        if self.step_trace is not None:
            self._refresh_cards()

    # ---- data ---------------------------------------------------------------------------
    def set_step(self, st: StepTrace) -> None:
        """Show the pass of the step just taken (its pre-step weights are in ``st``)."""
        if self.model is None or self.model.config != st.config:
            self.model = Model(st.config)
        self.step_trace = st
        stages = build_stages(self.model, st)
        keys = [s.key for s in stages]
        self.stages = {s.key: s for s in stages}
        if self.isVisible():
            self._width = self._room()
        if keys != [k for card in self.cards for k in card.keys]:
            self._rebuild_cards(stages)
        self._refresh_cards()
        tr = st.trace
        label = int(tr["labels"][0])
        probs = tr["probs"][0]
        guess = int(np.argmax(probs))
        verdict = (f"<span style='color:{self.theme.good}'>right</span>" if guess == label else
                   f"<span style='color:{self.theme.bad}'>wrong</span>")
        names = [html.escape(n) for n in self.model.class_names]  # "label 3 (D)" beyond digits
        said, meant = (f" ({names[k]})" if names[k] != str(k) else "" for k in (guess, label))
        self.header_label.setText(
            f"<b>Step {st.step}</b> &nbsp; one sample, label <b>{label}</b>{meant}<br>"
            f"network said <b>{guess}</b>{said} (out[{guess}] = {probs[guess]:.3f}), "
            f"{verdict}<br>"
            f"loss L = {float(tr['loss'][0]):.4f} &nbsp; lr {st.lr:g}")
        self.gradcheck.set_step(st)
        key, index = self.selection
        if key not in self.stages:
            key, index = "loss", (0,)
        self.select(key, index)

    def _rebuild_cards(self, stages: list[Stage]) -> None:
        for card in self.cards:
            card.setParent(None)
            card.deleteLater()
        self.placeholder.hide()
        self.cards, self.grids = [], {}
        i = 0
        while i < len(stages):
            s = stages[i]
            group = [s]
            while s.group and i + len(group) < len(stages) and \
                    stages[i + len(group)].group == s.group:
                group.append(stages[i + len(group)])
            card = StageCard(group, self._on_click, self._width, self.compact, self.content)
            self.cards.append(card)
            self.grids.update(card.grids)
            i += len(group)
        for grid in self.grids.values():
            grid.set_colors(self.theme.text, self.theme.muted, self.theme.accent)

    def _refresh_cards(self) -> None:
        label = int(self.step_trace.trace["labels"][0])
        for card in self.cards:
            card.update_stages([self.stages[k] for k in card.keys], self.luts, self._width,
                               self.compact)
        for key, grid in self.grids.items():
            grid.emphasis = {label} if self.stages[key].layout.col_labels else set()
        self._pack()

    def _pack(self) -> None:
        """Section by section, the cards in rows as wide as the room (a flow layout)."""
        for card in self.cards:
            card.setParent(self.content)  # kept while the old rows go
        for row in self._rows:
            self.content_layout.removeWidget(row)
            row.deleteLater()
        while self.content_layout.count() > 1:  # the placeholder stays; the stretch goes
            self.content_layout.takeAt(1)
        self._rows = []
        section, row, used = None, None, 0
        for card in self.cards:
            stage = self.stages[card.keys[0]]
            width = card.sizeHint().width()
            if stage.section != section:
                section, row = stage.section, None
                title = QLabel(SECTIONS[section])
                title.setObjectName("sectionTitle")
                self._rows.append(title)
            if row is None or used + 8 + width > self._width:
                row = QWidget()
                box = QHBoxLayout(row)
                box.setContentsMargins(0, 0, 0, 0)
                box.setSpacing(8)
                box.addStretch(1)
                self._rows.append(row)
                used = -8
            row.layout().insertWidget(row.layout().count() - 1, card, 0, Qt.AlignTop)
            card.show()
            used += 8 + width
        for w in self._rows:  # shown and laid out now, not when the event loop gets round
            self.content_layout.addWidget(w)  # to it: never blank in between
            w.show()
        self.content_layout.addStretch(1)
        self.content_layout.activate()

    def settling(self) -> bool:
        """Is a new layout for a new size still to come (the deferred fit)?"""
        return self._fit_timer.isActive()

    # ---- selection ----------------------------------------------------------------------
    def _on_click(self, key: str, k: int, i: int, j: int) -> None:
        self.select(key, self.stages[key].layout.to_index(k, i, j))

    def select(self, key: str, index) -> Explanation:
        """Explain the cell ``index`` of stage ``key``; outline it and its sources."""
        stage = self.stages[key]
        index = tuple(int(v) for v in index)
        e = stage.explain(index)
        self.selection, self.explanation = (key, index), e
        self.arithmetic_text.setPlainText(e.text(self._text_columns()))
        sources: dict[str, list] = {}
        for src_key, src_index in e.sources:
            for other in self.stages.values():
                if src_key in other.trace_keys and other.key != key:
                    try:
                        cell = other.layout.to_cell(tuple(src_index))
                    except (IndexError, TypeError, ValueError):
                        continue
                    sources.setdefault(other.key, []).append(cell)
        for other, grid in self.grids.items():
            grid.set_marks(stage.layout.to_cell(index) if other == key else None,
                           sources.get(other, ()))
        self.cell_selected.emit(key, index)
        return e

    def _text_columns(self) -> int:
        """Characters that fit on one line of the arithmetic panel, its scroll bar counted in
        whether it shows yet or not."""
        text = self.arithmetic_text
        bar = text.verticalScrollBar()
        width = text.viewport().width() - (0 if bar.isVisible() else bar.sizeHint().width())
        width -= 2 * text.document().documentMargin() + 2  # and the cursor
        char = text.fontMetrics().horizontalAdvance("0" * 100) / 100 or 8
        return max(24, int(width / char))

    def _gradcheck_finished(self, report: dict) -> None:
        if "error" not in report and self.splitter.orientation() == Qt.Vertical:
            self._fitted = 0  # the side grows to show the result beside the arithmetic
            self._fit()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop a running gradient check (at its next entry) and wait for it, and put a window
        of its own back (call before closing the main window)."""
        self.pop_out.put_back()
        return self.gradcheck.shutdown(timeout_ms)
