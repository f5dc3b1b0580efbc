"""The Inspector: one sample's forward and backward pass, number by number.

After a single-sample step (a ``StepTrace`` from ``engine.explain.traced_step``) it shows the
pass in order, each stage a picture with its numbers, in the design notes' names: forward
(input -> conv -> pooled with argmax masks -> flattened -> logits t -> softmax out -> loss),
backward (dL/dout, dout/dt, dL/dt, dL/dw, dL/db, dL/dinput, the pool-routed gradient,
dL/dfilters) and the update (w -= lr * dL/dw: before, after, change). Clicking a cell shows
its arithmetic with the actual numbers (``engine.explain``) and outlines the cells it came
from. The gradient check runs on a pool thread, never on the GUI thread: every entry of
every weight when that fits ``CHECK_BUDGET`` (the seed and deep networks), else a random
sample of each weight; it shows its progress and stops when its button is clicked again.
"""
from __future__ import annotations

import math
import time

import numpy as np
from PyQt5.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QFontDatabase
from PyQt5.QtWidgets import (
    QBoxLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from convscope.engine.net.model import Model
from convscope.engine.tools.explain import Explanation, StepTrace
from convscope.engine.tools.gradcheck import CHECK_BUDGET, affordable_entries, check_cost, gradcheck
from convscope.visualizer import theme as themes
from convscope.visualizer.cell_grid import CellGrid
from convscope.visualizer.inspector_stages import SECTIONS, Stage, build_stages

PASS_THRESHOLD = 1e-6
CHECK_TEXT = "Gradient check this sample"
SIDE_MIN = 240  # the arithmetic column beside the stages: about 26 characters, at least
STAGE_ROOM = 520  # what the stages keep of a wide view first: two map cards side by side
CARD_PAD = 14  # a stage card's margins and border, left and right together
NUMBER_CELL = 36  # the narrowest cell that still shows its number


# ---- the gradient check off the GUI thread ----------------------------------------------
class _Signals(QObject):
    done = pyqtSignal(object)  # the gradcheck report, {"stopped": True} or {"error": str}
    progress = pyqtSignal(int, int)  # entries checked, entries to check


class GradcheckTask(QRunnable):
    """gradcheck(model, x, labels) on a pool thread; progress (about 10 a second) and the
    result come back as signals. ``max_entries`` per weight, None: every entry."""

    def __init__(self, model: Model, x, labels, grad_hook=None, max_entries=100, step=0):
        super().__init__()
        self.signals = _Signals()
        self.model, self.x, self.labels = model, x, labels
        self.grad_hook, self.max_entries, self.step = grad_hook, max_entries, step
        self.cost = check_cost(model, None, len(labels))  # multiply-adds to check them all
        self.cancelled = False  # set from the GUI thread: stop at the next entry
        self._shown = 0.0  # when progress was last sent

    def run(self):
        try:
            report = gradcheck(self.model, self.x, self.labels, grad_hook=self.grad_hook,
                               max_entries=self.max_entries, threshold=PASS_THRESHOLD,
                               should_stop=lambda: self.cancelled, progress=self._progress)
        except InterruptedError:
            report = {"stopped": True}
        except Exception as e:  # reported in the table, never raised in a pool thread
            report = {"error": f"{type(e).__name__}: {e}"}
        self.signals.done.emit(report)

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._shown >= 0.1 or done == total:
            self._shown = now
            self.signals.progress.emit(done, total)


def _sci(v: float) -> str:
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"  # 3.9e11


def gradcheck_summary(report: dict, task: GradcheckTask, budget: float) -> str:
    """What the check of ``task`` found, and whether it checked every entry or a sample."""
    checked = sum(v["checked"] for v in report["params"].values())
    size = sum(v["size"] for v in report["params"].values())
    if checked == size:
        which = f"Every entry checked, {checked:,} of {size:,}"
    else:
        which = f"A random sample checked, {checked:,} of {size:,} entries, at most " \
                f"{task.max_entries:,} per weight"
        if task.cost > budget:
            which += f" (all would cost {_sci(task.cost)} multiply-adds, over the bound of " \
                     f"{_sci(budget)})"
    verdict = "passed" if report["passed"] else "FAILED"
    return (f"Step {task.step}: {verdict}. {which}; each relative error must be below "
            f"{PASS_THRESHOLD:g} (centred differences in float64, input jittered by "
            f"+-{report['jitter']:g} off pooling ties).")


# ---- the view -------------------------------------------------------------------------------
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
    gradcheck_finished = pyqtSignal(object)  # the gradcheck report

    def __init__(self, parent=None):
        super().__init__(parent)
        self.step_trace: StepTrace | None = None
        self.model: Model | None = None
        self.stages: dict[str, Stage] = {}
        self.cards: list[StageCard] = []
        self.grids: dict[str, CellGrid] = {}
        self.selection: tuple = ("loss", (0,))
        self.explanation: Explanation | None = None
        self.grad_hook = None  # optional: alters analytic gradients before the check (tests)
        self.gradcheck_entries: int | None = None  # at most this many per weight if set
        self.gradcheck_budget = CHECK_BUDGET  # multiply-adds before the check samples
        self.gradcheck_report: dict | None = None
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._tasks: list[GradcheckTask] = []
        self._running: GradcheckTask | None = None  # the check the button would stop
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
        self.gradcheck_button = QPushButton(CHECK_TEXT)
        self.gradcheck_button.setToolTip("Compare every analytic gradient with a centred "
                                         "numeric gradient (float64 copy of the weights); "
                                         "click again to stop")
        self.gradcheck_button.setEnabled(False)
        self.gradcheck_button.clicked.connect(self.toggle_gradcheck)
        self.gradcheck_status = QLabel("")
        self.gradcheck_status.setWordWrap(True)
        self._build_table()
        self.window_button = QPushButton("Open in its own window")
        self.window_button.setToolTip("More room for the pass: the inspector in a window of "
                                      "its own (close it to put it back)")
        self.window_button.clicked.connect(self.toggle_window)
        self.reading = _column(self.header_label, self.arithmetic_label, self.arithmetic_text)
        self.reading.layout().setStretch(2, 1)
        self.checking = _column(self.gradcheck_button, self.window_button,
                                self.gradcheck_status, self.gradcheck_table)
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
        self._home: QScrollArea | None = None  # the tab's scroll area while in a window

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_timer.start()

    def _build_table(self) -> None:
        self.gradcheck_table = table = QTableWidget(0, 3)
        table.setHorizontalHeaderLabels(["layer", "max error", f"< {PASS_THRESHOLD:g}"])
        for col, tip in enumerate(["", "the largest relative error |a - n| / (|a| + |n|) of "
                                   "the layer's entries", "passes when the error is below this"]):
            table.horizontalHeaderItem(col).setToolTip(tip)
        table.verticalHeader().setVisible(False)
        header = table.horizontalHeader()
        for col, mode in enumerate([QHeaderView.ResizeToContents, QHeaderView.Stretch,
                                    QHeaderView.ResizeToContents]):
            header.setSectionResizeMode(col, mode)
        table.setEditTriggers(QTableWidget.NoEditTriggers)
        table.hide()

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
        self.header_label.setText(
            f"<b>Step {st.step}</b> &nbsp; one sample, label <b>{label}</b><br>"
            f"network said <b>{guess}</b> (out[{guess}] = {probs[guess]:.3f}), {verdict}<br>"
            f"loss L = {float(tr['loss'][0]):.4f} &nbsp; lr {st.lr:g}")
        self.gradcheck_button.setEnabled(True)
        if self.gradcheck_report is not None and self._running is None:
            self.gradcheck_status.setText("(from an earlier step; run it again for this one)")
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
        for w in self._rows:
            self.content_layout.addWidget(w)
        self.content_layout.addStretch(1)

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

    # ---- gradient check -----------------------------------------------------------------
    def toggle_gradcheck(self) -> None:
        """Start a gradient check of this step's sample, or stop the one running."""
        if self._running is None:
            self.run_gradcheck()
            return
        self._running.cancelled = True  # it stops at its next entry
        self.gradcheck_button.setEnabled(False)

    def entries_to_check(self, model: Model) -> int | None:
        """Entries per weight: None (every entry) when the check fits ``gradcheck_budget``
        multiply-adds, else as many as fit; never more than ``gradcheck_entries`` if set."""
        n = affordable_entries(model, self.gradcheck_budget)
        cap = self.gradcheck_entries
        return cap if n is None else n if cap is None else min(n, cap)

    def run_gradcheck(self) -> None:
        """Check the analytic gradients of this step's sample, with its pre-step weights."""
        st = self.step_trace
        if st is None or self._running is not None:
            return
        model = Model(st.config)
        model.set_params(st.params_before)
        task = GradcheckTask(model, st.trace["input"].copy(), st.trace["labels"].copy(),
                             self.grad_hook, self.entries_to_check(model), st.step)
        task.setAutoDelete(False)
        task.signals.done.connect(self._show_gradcheck)
        task.signals.progress.connect(self._show_progress)
        self._tasks.append(task)
        self._running = task
        self.gradcheck_button.setText("Stop the gradient check")
        self.gradcheck_status.setText("checking: centred differences in float64 ...")
        self.pool.start(task)

    def _show_progress(self, done: int, total: int) -> None:
        if self._running is not None and self._running.signals is self.sender():
            self.gradcheck_status.setText(f"checking: {done:,} of {total:,} entries done, "
                                          "centred differences in float64 ...")

    def _show_gradcheck(self, report: dict) -> None:
        task = next((t for t in self._tasks if t.signals is self.sender()), None)
        if task is None:
            return
        self._tasks.remove(task)
        if task is self._running:
            self._running = None
            self.gradcheck_button.setText(CHECK_TEXT)
            self.gradcheck_button.setEnabled(self.step_trace is not None)
        if "stopped" in report:
            self.gradcheck_status.setText("gradient check stopped")
            return
        self.gradcheck_report = report
        table = self.gradcheck_table
        if "error" in report:
            table.setRowCount(0)
            self.gradcheck_status.setText(f"gradient check failed to run: {report['error']}")
            self.gradcheck_finished.emit(report)
            return
        table.setRowCount(len(report["layers"]))
        table.show()
        for row, (layer, err) in enumerate(report["layers"].items()):
            ok = err < PASS_THRESHOLD
            mark = QTableWidgetItem("\u2713 pass" if ok else "\u2717 FAIL")
            mark.setForeground(QColor(self.theme.good if ok else self.theme.bad))
            params = [f"{k}: {v['max_rel_error']:.1e} ({v['checked']:,} of {v['size']:,} "
                      "checked)" for k, v in report["params"].items() if k.split(".")[0] == layer]
            for col, item in enumerate([QTableWidgetItem(layer),
                                        QTableWidgetItem(f"{err:.2e}"), mark]):
                item.setToolTip("\n".join(params))
                table.setItem(row, col, item)
        table.setFixedHeight(min(180, table.horizontalHeader().height() + 2 * table.frameWidth()
                                 + sum(table.rowHeight(r) for r in range(table.rowCount()))))
        self.gradcheck_status.setText(gradcheck_summary(report, task, self.gradcheck_budget))
        if self.splitter.orientation() == Qt.Vertical:
            self._fitted = 0  # the side grows to show the result beside the arithmetic
            self._fit()
        self.gradcheck_finished.emit(report)

    # ---- a window of its own --------------------------------------------------------------
    def toggle_window(self) -> None:
        """Move the inspector out of its tab into a window of its own, or back."""
        if self._home is not None:
            self.close()
            return
        holder = self.parent()
        while holder is not None and not isinstance(holder, QScrollArea):
            holder = holder.parent()
        if holder is None or holder.widget() is not self:
            return  # not in a tab: already a window
        top = self.window()
        holder.takeWidget()
        note = QWidget()
        box = QVBoxLayout(note)
        back = QPushButton("Put the inspector back here")
        back.clicked.connect(self.close)
        box.addWidget(QLabel("The inspector is open in its own window."))
        box.addWidget(back)
        box.addStretch(1)
        holder.setWidget(note)
        self._home = holder
        self.setParent(top, Qt.Window)  # closes with the main window
        self.setWindowTitle("ConvScope: Inspector")
        self.window_button.setText("Put back in the tab")
        self.resize(1280, 800)
        self.show()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._home is None:
            super().closeEvent(event)
            return
        event.ignore()  # a window of its own closes by going back to its tab
        home, self._home = self._home, None
        home.takeWidget().deleteLater()
        self.setWindowFlags(Qt.Widget)
        home.setWidget(self)
        self.window_button.setText("Open in its own window")
        self.show()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop a running gradient check (at its next entry) and wait for it, and put a window
        of its own back (call before closing the main window)."""
        for task in self._tasks:
            task.cancelled = True
        if self._home is not None:
            self.close()
        return self.pool.waitForDone(timeout_ms)
