"""Timeline: scrub back through training and resume from any kept moment.

The panel reads an ``engine.timeline.Timeline`` (the worker records into it; it is thread-safe)
and draws the loss of every step of the current run, with the loss curves of abandoned runs
(forks) beside it. The slider picks a kept snapshot: a marker shows that moment on the curves
and ``scrubbed(Snapshot)`` carries its weights, with the probe digit traced through them, so
the other panels can show that moment. "Resume from here" emits ``resume_requested(step, lr)``:
with the lr that moment used the run continues exactly as before (bit for bit); with another lr
it forks and both runs' curves stay visible.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from convscope.engine.net.model import Model
from convscope.engine.net.train import Snapshot
from convscope.engine.tools.timeline import Timeline
from convscope.visualizer import theme as themes

REFRESH_MS = 500
BRANCH_COLORS = ("#e0a030", "#c070e0", "#50c0b0", "#e06080")


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Moving average over ``window`` points (shorter at the start), same length as y."""
    if window <= 1 or len(y) < 2:
        return y
    c = np.cumsum(np.concatenate([[0.0], y]))
    lo = np.maximum(np.arange(1, len(y) + 1) - window, 0)
    return (c[1:] - c[lo]) / (np.arange(1, len(y) + 1) - lo)


def megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


class TimelinePanel(QWidget):
    scrubbed = pyqtSignal(object)  # engine.train.Snapshot of the moment shown, None = live
    resume_requested = pyqtSignal(int, float)  # snapshot step, lr to continue with

    def __init__(self, timeline: Timeline | None = None, parent=None):
        super().__init__(parent)
        self.timeline = timeline or Timeline()
        self.config: dict | None = None
        self._model: Model | None = None
        self.probe: tuple | None = None  # (x (1, 28, 28) float, labels (1,))
        self.steps: list[int] = []  # the snapshot steps the slider walks through
        self.chosen: int | None = None  # step shown, None = live
        self._curve_len = -1
        self._branch_count = -1
        self.theme = themes.DARK

        self.plot_widget = pg.PlotWidget()
        self.plot_widget.setMinimumSize(240, 120)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.getViewBox().setMouseEnabled(x=True, y=False)
        self.legend = self.plot.addLegend(offset=(-8, 8), labelTextSize="8pt")
        self.raw_curve = self.plot.plot(name="this run, each step")
        self.curve = self.plot.plot(name="this run, smoothed")
        self.branch_curves: list[pg.PlotDataItem] = []
        self.marker = pg.InfiniteLine(angle=90, movable=False)
        self.marker.hide()
        self.plot.addItem(self.marker)
        self.snapshot_marks = pg.ScatterPlotItem(size=5, symbol="t1")
        self.plot.addItem(self.snapshot_marks)

        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setPageStep(1)
        self.slider.setToolTip("Drag back through training: each position is a kept snapshot; "
                               "the right end is the live run")
        self.slider.valueChanged.connect(self._on_slider)
        self.step_label = QLabel("live")
        self.memory_label = QLabel("")
        self.memory_label.setObjectName("muted")
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(1e-5, 10.0)
        self.lr_spin.setSingleStep(0.001)
        self.lr_spin.setToolTip("The learning rate to continue with: the moment's own lr "
                                "replays the run exactly; another one forks it")
        self.lr_spin.valueChanged.connect(self._describe)
        self.resume_button = QPushButton("Resume from here")
        self.resume_button.setEnabled(False)
        self.resume_button.clicked.connect(self.resume)
        self.live_button = QPushButton("Live")
        self.live_button.setEnabled(False)
        self.live_button.clicked.connect(self.go_live)
        self.fork_label = QLabel("")

        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.step_label)
        actions = QHBoxLayout()
        actions.addWidget(QLabel("with lr"))
        actions.addWidget(self.lr_spin)
        actions.addWidget(self.resume_button)
        actions.addWidget(self.live_button)
        actions.addStretch(1)
        notes = QHBoxLayout()
        notes.addWidget(self.fork_label)
        notes.addStretch(1)
        notes.addWidget(self.memory_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.plot_widget, 1)
        layout.addLayout(row)
        layout.addLayout(actions)
        layout.addLayout(notes)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        self.apply_theme(themes.DARK)

    # ---- inputs ---------------------------------------------------------------------------
    def set_config(self, config: dict) -> None:
        """The architecture of the run (after each Reset); forgets the scrub position."""
        self.config = config
        self._model = Model(config)
        self.chosen = None
        self._curve_len = -1
        self.refresh()

    def set_live_snapshot(self, snapshot) -> None:
        """Remember the probe digit of a live snapshot, to trace it through old weights."""
        trace = getattr(snapshot, "probe_trace", None)
        if trace and "input" in trace and getattr(snapshot, "step", None) != self.chosen:
            self.probe = (trace["input"], trace["labels"])

    def set_current_lr(self, lr: float) -> None:
        if self.chosen is None:
            self.lr_spin.setValue(lr)

    # ---- refresh --------------------------------------------------------------------------
    def _tick(self) -> None:
        if self.isVisible():
            self.refresh()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.refresh()  # the run so far at once, not at the next tick
        super().showEvent(event)

    def refresh(self) -> None:
        """Pull the curves and snapshot steps from the timeline (cheap when nothing changed)."""
        steps, losses = self.timeline.curve()
        branches = self.timeline.branches()
        if len(steps) != self._curve_len or len(branches) != self._branch_count:
            self._curve_len, self._branch_count = len(steps), len(branches)
            smoothed = smooth(losses, max(1, len(losses) // 100))
            self.raw_curve.setData(steps, losses)
            self.curve.setData(steps, smoothed)
            top = self._draw_branches(branches)
            if len(smoothed):  # scale to the smoothed curves: single-sample spikes go off top
                top = max(top, float(np.max(smoothed)))
                self.plot.setYRange(0, 1.25 * top, padding=0)
        snap_steps = self.timeline.snapshot_steps()
        if snap_steps != self.steps:
            self.steps = snap_steps
            at = self._loss_at(snap_steps, steps, losses)
            self.snapshot_marks.setData(snap_steps, at)
            self.slider.blockSignals(True)
            self.slider.setRange(0, len(snap_steps))  # the last position is "live"
            if self.chosen is None:
                self.slider.setValue(len(snap_steps))
            else:
                self.slider.setValue(self._position(self.chosen))
            self.slider.blockSignals(False)
        self.memory_label.setText(
            f"{len(snap_steps)} snapshots, every {self.timeline.every} steps\n"
            f"memory {megabytes(self.timeline.memory_used)} of "
            f"{megabytes(self.timeline.max_bytes)}")

    @staticmethod
    def _loss_at(snap_steps, steps, losses) -> np.ndarray:
        if not len(steps):
            return np.zeros(len(snap_steps))
        i = np.clip(np.searchsorted(steps, snap_steps), 0, len(steps) - 1)
        return losses[i]

    def _draw_branches(self, branches) -> None:
        for item in self.branch_curves:
            self.plot.removeItem(item)
            self.legend.removeItem(item)
        self.branch_curves = []
        top = 0.0
        for n, b in enumerate(branches):
            color = BRANCH_COLORS[n % len(BRANCH_COLORS)]
            y = smooth(b.losses, max(1, len(b.losses) // 100))
            item = self.plot.plot(b.steps, y, pen=pg.mkPen(color, width=1.5, style=Qt.DashLine),
                                  name=f"abandoned: {b.label}")
            self.branch_curves.append(item)
            top = max(top, float(np.max(y)) if len(y) else 0.0)
        return top

    def _position(self, step: int) -> int:
        return self.steps.index(step) if step in self.steps else len(self.steps)

    # ---- scrubbing and resuming -----------------------------------------------------------
    def _on_slider(self, value: int) -> None:
        if value >= len(self.steps):
            self.go_live()
        else:
            self.show_step(self.steps[value])

    def show_step(self, step: int) -> Snapshot | None:
        """Show the kept moment at or before ``step`` and emit it as a Snapshot (None, and
        nothing shown, while the timeline already holds a new architecture's run whose
        ``set_config`` has not arrived yet)."""
        state = self.timeline.state_at(step)
        own, params = self._model and self._model.params(), state["params"]
        if own and (set(own) != set(params) or any(own[k].shape != params[k].shape
                                                   for k in own)):
            return None
        meta = state["meta"]
        self.chosen = int(meta["step"])
        self.slider.blockSignals(True)
        self.slider.setValue(self._position(self.chosen))
        self.slider.blockSignals(False)
        self.marker.setValue(self.chosen)
        self.marker.show()
        self.lr_spin.blockSignals(True)
        self.lr_spin.setValue(float(meta["lr"]))
        self.lr_spin.blockSignals(False)
        self._moment_lr = float(meta["lr"])
        self.resume_button.setEnabled(True)
        self.live_button.setEnabled(True)
        snapshot = Snapshot(self.chosen, int(meta["epoch"]), state["params"],
                            self._probe_trace(state["params"]))
        self._describe()
        self.scrubbed.emit(snapshot)
        return snapshot

    def _probe_trace(self, params: dict) -> dict | None:
        if self._model is None or self.probe is None:
            return None
        self._model.set_params(params)
        trace: dict = {}
        with np.errstate(all="ignore"):  # weights near a divergence: the window cleans them
            self._model.loss_and_grads(self.probe[0], self.probe[1], trace)
        return trace

    def _describe(self, *_) -> None:
        if self.chosen is None:
            self.step_label.setText("live")
            self.fork_label.setText("")
            return
        self.step_label.setText(f"step {self.chosen}")
        lr = self.lr_spin.value()
        if abs(lr - self._moment_lr) <= 1e-12 * max(1.0, lr):
            self.fork_label.setText("same lr: replays\nthe run exactly")
        else:
            self.fork_label.setText(f"lr {lr:g}: forks the run\n(the old curve stays, dashed)")

    def go_live(self) -> None:
        self.chosen = None
        self.marker.hide()
        self.resume_button.setEnabled(False)
        self.live_button.setEnabled(False)
        self.slider.blockSignals(True)
        self.slider.setValue(len(self.steps))
        self.slider.blockSignals(False)
        self._describe()
        self.scrubbed.emit(None)

    def resume(self) -> None:
        """Ask to continue training from the moment shown with the lr in the box."""
        if self.chosen is None:
            return
        step, lr = self.chosen, float(self.lr_spin.value())
        self.go_live()
        self.resume_requested.emit(step, lr)

    # ---- theme ----------------------------------------------------------------------------
    def apply_theme(self, theme) -> None:
        self.theme = theme
        self.plot_widget.setBackground(theme.plot_bg)
        for axis in ("left", "bottom"):
            ax = self.plot.getAxis(axis)
            ax.setPen(theme.muted)
            ax.setTextPen(theme.text)
        raw = pg.mkColor(theme.curve)
        raw.setAlpha(70)
        self.raw_curve.setPen(pg.mkPen(raw, width=1))
        self.curve.setPen(pg.mkPen(theme.curve2, width=2))
        self.marker.setPen(pg.mkPen(theme.accent, width=2))
        self.snapshot_marks.setBrush(pg.mkBrush(theme.muted))
        self.snapshot_marks.setPen(pg.mkPen(None))
        self.setStyleSheet(f"QLabel#muted {{ color: {theme.muted}; }}")
