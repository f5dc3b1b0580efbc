"""Timeline: scrub back through training and resume from any kept moment.

The panel reads an ``engine.timeline.Timeline`` (the worker records into it; it is thread-safe)
and draws the loss of every step of the current run, with the loss curves of abandoned runs
(forks) beside it. The slider picks a kept snapshot: a marker shows that moment on the curves
and ``scrubbed(Snapshot)`` carries its weights, with the probe digit traced through them, so
the other panels can show that moment. "Resume from here" emits ``resume_requested(step, lr)``:
with the lr that moment used the run continues exactly as before (bit for bit); with another lr
it forks and both runs' curves stay visible.

The y range ignores outliers (a 700-loss spike before a divergence does not flatten the rest),
the wheel zooms both axes, "log scale" shows small and huge losses together; the legend sits
on a see-through box (the curve shows under it), every marker is named there and has a tooltip.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
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
from convscope.visualizer.plot_axes import log_ticks, plain_axis, robust_top

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
        for axis in ("left", "bottom"):
            plain_axis(self.plot.getAxis(axis))
        log_ticks(self.plot.getAxis("left"))
        vb = self.plot.getViewBox()
        vb.setMouseEnabled(x=True, y=True)  # the wheel zooms both axes
        vb.sigRangeChangedManually.connect(self._on_manual_range)
        self.auto_y = True  # the y range follows the curves until the user zooms
        # top right, left of the panel's "?" button, on a see-through box
        self.legend = self.plot.addLegend(offset=(-30, 4), labelTextSize="8pt")
        self.raw_curve = self.plot.plot(name="this run, each step")
        self.raw_curve.setZValue(-10)
        self.curve = self.plot.plot(name="this run (smoothed)")
        self.branch_curves: list[pg.PlotDataItem] = []
        self.marker = pg.InfiniteLine(angle=90, movable=False)
        self.marker.hide()
        self.plot.addItem(self.marker)
        self.snapshot_marks = pg.ScatterPlotItem(
            size=7, symbol="t1", name="kept snapshot (slider stops)", hoverable=True,
            tip="step {x:,.0f}: a kept snapshot; the slider shows it, Resume continues from it"
            .format)
        self.plot.addItem(self.snapshot_marks)
        self.best_mark = pg.ScatterPlotItem(size=13, symbol="star", hoverable=True,
                                            name="best state (always kept)",
                                            tip="step {x:,.0f}: the run's best state, always "
                                                "kept".format)
        self.plot.addItem(self.best_mark)
        self._marks = ([], [], [], [])  # snapshot steps, their losses, best step, its loss
        self.plot_widget.setToolTip("Loss of every step (faint) and its average (bold); dashed: "
                                    "abandoned runs. Wheel: zoom (over an axis: that axis); "
                                    "A button: fit again")
        self.log_check = QCheckBox("log scale")
        self.log_check.setToolTip("Draw the loss on a log scale: small losses and spikes both "
                                  "readable")
        self.log_check.toggled.connect(self.set_log)

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
        actions.addWidget(self.log_check)
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
            self._smoothed = [smoothed] + self._draw_branches(branches)
            self._fit_y()
        snap_steps = self.timeline.snapshot_steps()
        if snap_steps != self.steps:
            self.steps = snap_steps
            best = [self.timeline.best_step()] if snap_steps else []
            line = self._smoothed[0] if self._smoothed else losses  # on the smoothed curve
            self._marks = (snap_steps, self._loss_at(snap_steps, steps, line), best,
                           self._loss_at(best, steps, line))
            self._place_marks()
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

    _smoothed: list = []
    _marks: tuple = ([], [], [], [])

    def _place_marks(self) -> None:
        """Snapshot and best-state marks (scatter items are not log-mapped by pyqtgraph)."""
        steps, at, best, best_at = self._marks
        log = self.log_check.isChecked()

        def y(values):
            return np.log10(np.maximum(values, 1e-6)) if log else np.asarray(values)
        self.snapshot_marks.setData(steps, y(at))
        self.best_mark.setData(best, y(best_at))

    def _fit_y(self) -> None:
        """Scale y to this run's smoothed curve without its top 2% (spikes go off the top;
        an abandoned run counts with its median, its blow-up is not followed)."""
        live = self._smoothed[0] if self._smoothed else np.empty(0)
        top = robust_top([live] if len(live) else [])
        others = [float(np.median(y)) for y in self._smoothed[1:] if len(y)]
        top = max([t for t in [top] + others if t is not None], default=None)
        if top is None or not self.auto_y:
            return
        top = max(top * 1.25, 1e-3)
        if self.log_check.isChecked():
            low = min(float(np.min(y[y > 0])) for y in self._smoothed if np.any(y > 0)) \
                if any(np.any(y > 0) for y in self._smoothed) else top / 100
            self.plot.setYRange(np.log10(max(low * 0.8, 1e-4)), np.log10(top), padding=0)
        else:
            self.plot.setYRange(0, top, padding=0)

    def set_log(self, log: bool) -> None:
        self.log_check.setChecked(log)
        self.plot.setLogMode(y=log)
        self.plot.setLabel("left", "loss (log scale)" if log else "loss")
        self._place_marks()
        self.auto_y = True
        self._fit_y()

    def _on_manual_range(self, *_) -> None:
        self.auto_y = False
        self.plot.getViewBox().sigStateChanged.connect(self._maybe_auto)

    def _maybe_auto(self, *_) -> None:
        """The "A" button (auto-range on): follow the curves again."""
        if all(self.plot.getViewBox().autoRangeEnabled()):
            self.plot.getViewBox().sigStateChanged.disconnect(self._maybe_auto)
            self.auto_y = True
            self.plot.enableAutoRange(False)
            self._fit_y()

    def _draw_branches(self, branches) -> list:
        for item in self.branch_curves:
            self.plot.removeItem(item)
            self.legend.removeItem(item)
        self.branch_curves = []
        curves = []
        for n, b in enumerate(branches):
            color = BRANCH_COLORS[n % len(BRANCH_COLORS)]
            y = smooth(b.losses, max(1, len(b.losses) // 100))
            item = self.plot.plot(b.steps, y, pen=pg.mkPen(color, width=1.5, style=Qt.DashLine),
                                  name=f"abandoned: {b.label}")
            self.branch_curves.append(item)
            curves.append(y)
        return curves

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
        self.best_mark.setBrush(pg.mkBrush(theme.good))
        self.best_mark.setPen(pg.mkPen(theme.plot_bg))
        see_through = pg.mkColor(theme.plot_bg)
        see_through.setAlpha(205)  # readable over a curve, which still shows through
        self.legend.setBrush(pg.mkBrush(see_through))
        self.legend.setPen(pg.mkPen(theme.muted))
        self.legend.setLabelTextColor(theme.text)
        self.setStyleSheet(f"QLabel#muted {{ color: {theme.muted}; }}")
