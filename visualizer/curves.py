"""Loss and accuracy curves against samples seen.

Loss: every step's batch loss (raw, faint), its light exponential smoothing, the train loss of
each epoch and the test loss of each evaluation. Accuracy: running train accuracy (smoothed
over about 500 samples), each epoch's train accuracy and each test accuracy. Histories are
bounded (``History``) and the plots downsample to the plot's width, so long runs stay fast.

The curves are a record: going back (resume, rollback) moves the later points to a dimmed
"abandoned" branch, the live curves continue from there; a Reset keeps the previous run's
curves, dimmed, until the next Reset. The y range ignores outliers; the wheel zooms both axes.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QColor
from PyQt5.QtWidgets import QGraphicsView, QVBoxLayout, QWidget

from convscope.visualizer.history import History, alpha_for, ema
from convscope.visualizer.plot_axes import (
    faint,
    label_once,
    log_ticks,
    nice_end,
    plain_axis,
    robust_top,
)
from convscope.visualizer.theme import Theme, cached

LOSS_WINDOW = 50.0  # samples the smoothed loss averages over (light smoothing)
ACC_WINDOW = 500.0  # samples the running train accuracy averages over
SMOOTH = ("smooth", "running")  # smoothed curves: downsampled by their mean, not min and max
MAX_BRANCHES = 8  # abandoned branches drawn (the oldest go first)


class _CurvePanel(QWidget):
    """A PlotWidget with named curves created once and updated with setData."""

    def __init__(self, y_label: str, parent=None):
        super().__init__(parent)
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLabel("bottom", "samples seen")
        self.plot.setLabel("left", y_label)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        for name in ("left", "bottom"):
            plain_axis(self.plot.getAxis(name))
            label_once(cached(self.plot.getAxis(name)))
        cached(self.plot.titleLabel)
        self.plot.getViewBox().setMouseEnabled(x=True, y=True)  # the wheel zooms both axes
        self.plot.getViewBox().sigRangeChangedManually.connect(self._on_manual_range)
        self.follow = True
        # repaint once per refresh: on its own pyqtgraph repaints a growing curve twice
        self.plot_widget.setViewportUpdateMode(QGraphicsView.NoViewportUpdate)
        self.plot.getViewBox().sigRangeChanged.connect(self.redraw)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.plot_widget)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.histories: dict[str, History] = {}
        # the Timeline moment shown in the other panels (hidden while they show the live run)
        self.marker = pg.InfiniteLine(angle=90, movable=False)
        self.marker.setZValue(10)
        self.marker.hide()
        self.plot.addItem(self.marker, ignoreBounds=True)
        self._dirty = False
        self._pushed: dict[str, tuple] = {}  # curve -> state of its history last pushed
        self._shown: tuple | None = None  # (x_range, y_range) last set
        self._theme: Theme | None = None
        self.ghost_keys: tuple[str, ...] = ()  # curves kept when a branch is left
        self.branches: list[list[pg.PlotDataItem]] = []  # abandoned branches, oldest first
        self.previous: list[pg.PlotDataItem] = []  # the previous run's curves
        self.previous_label = ""

    def _add(self, key: str, name: str, capacity: int = 8192, **style):
        item = self.plot.plot(**style)
        item.legend_name = name
        self.curves[key] = item
        self.histories[key] = History(capacity)
        return item

    def clear(self) -> None:  # everything, earlier runs and branches included
        self._drop(self.previous)
        for items in self.branches:
            self._drop(items)
        self.previous, self.branches, self.previous_label = [], [], ""
        self._clear_live()
        self._relabel()

    def _clear_live(self) -> None:
        for key, h in self.histories.items():
            h.clear()
            self.curves[key].setData([], [])
        self._pushed.clear()
        self._shown, self._dirty = None, False
        self.redraw()

    def _drop(self, items: list) -> None:
        for item in items:
            self.plot.removeItem(item)

    def _ghost(self, key: str, xs: np.ndarray, ys: np.ndarray, previous: bool):
        """A dimmed copy of curve ``key`` (dashed: an abandoned branch; dotted: the previous
        run), drawn under the live curves."""
        symbol = self.curves[key].opts.get("symbol")
        item = self.plot.plot(xs, ys, **({"symbol": symbol, "symbolSize": 5} if symbol else {}))
        item.setDownsampling(ds=max(1, len(xs) // 1000), auto=False, method="mean")
        item.setZValue(-5)
        item.ghost_of, item.previous = key, previous
        self._style_ghost(item)
        return item

    def _style_ghost(self, item) -> None:
        if self._theme is None:
            return
        live = self.curves[item.ghost_of]
        color = faint(self._theme.muted if item.previous else live.opts["pen"].color().name()
                      if not live.opts.get("symbol") else
                      live.opts["symbolBrush"].color().name(), 150 if item.previous else 120)
        line = Qt.DotLine if item.previous else Qt.DashLine
        item.setPen(pg.mkPen(color, width=1.5, style=line))
        if live.opts.get("symbol"):
            item.setSymbolBrush(color)
            item.setSymbolPen(None)

    def fork(self, samples: float) -> None:
        """Training went back to ``samples`` (a resume or a rollback): the points after it
        become an abandoned branch (dimmed, dashed), the live curves continue from there."""
        items = []
        for key, h in self.histories.items():
            xs, ys = h.cut_after(samples)
            if key in self.ghost_keys and len(xs):
                items.append(self._ghost(key, xs, ys, previous=False))
        if items:
            self.branches.append(items)
        while len(self.branches) > MAX_BRANCHES:
            self._drop(self.branches.pop(0))
        self._pushed.clear()
        self._shown = None
        self._after_fork()
        self._dirty = True
        self._relabel()

    def _after_fork(self) -> None:
        """Continue the smoothing from the moment gone back to."""

    def new_run(self, label: str) -> None:
        """A Reset: this run's curves stay, dimmed and labelled ``label``, until the next one."""
        self._drop(self.previous)
        for items in self.branches:
            self._drop(items)
        self.branches = []
        self.previous = [self._ghost(k, self.histories[k].x.copy(), self.histories[k].y.copy(),
                                     previous=True)
                         for k in self.ghost_keys if len(self.histories[k])]
        self.previous_label = label if self.previous else ""
        self._clear_live()
        self._after_fork()
        self._relabel()

    def ghost_count(self) -> int:
        """Points drawn for earlier branches and the previous run."""
        items = self.previous + [i for b in self.branches for i in b]
        return sum(len(i.xData) if i.xData is not None else 0 for i in items)

    def _relabel(self) -> None:
        if self._theme is not None:
            self.plot.setTitle(self.legend_html(self._theme), size="8pt")
        self.plot.titleLabel.setToolTip(
            "╌ abandoned: curves of a branch left by going back (Timeline resume or a "
            "divergence rollback)" + (f"; ┈ previous run: {self.previous_label}, kept until "
                                       "the next Reset" if self.previous else ""))

    def refresh(self) -> None:
        """Push new points to the plot (called from the main window's repaint timer).

        The x range follows the run (set here, not by pyqtgraph's auto-range, which would
        cost a second repaint) until the user pans or zooms; the "A" button follows again."""
        if not self._dirty:
            return
        self._dirty = False
        vb = self.plot.getViewBox()
        width = max(100.0, vb.width())
        for key, item in self.curves.items():
            h = self.histories[key]
            # about two points per pixel column, each bin's min and max (pyqtgraph's own
            # automatic downsampling and clip-to-view would cost a second repaint per frame)
            # (a smoothed curve: one mean per pixel column, half the segments to draw)
            ds = max(1, int(len(h) / width))
            method = "mean" if key in SMOOTH else "peak"
            state = (len(h), h.stride, h.x[-1] if len(h) else None, ds)
            if self._pushed.get(key) == state:
                continue  # unchanged (epoch and test points come rarely): no new path
            self._pushed[key] = state
            item.setDownsampling(ds=ds, auto=False, method=method)  # no-op when unchanged
            item.setData(h.x, h.y)
        if vb.autoRangeEnabled()[0]:  # the "A" button: follow the run again
            self.follow, self._shown = True, None
        x_range = y_range = None
        if self.follow:  # until the user pans or zooms (either axis)
            ends = [h.x[-1] for h in self.histories.values() if len(h)]
            end = nice_end(float(max(ends, default=1.0)))
            x_range = (-0.02 * end, 1.02 * end)
            y_range = self._y_range()
        if (x_range or y_range) and (x_range, y_range) != self._shown:
            self._shown = (x_range, y_range)  # one call: the axes are laid out once
            self.plot.setRange(xRange=x_range, yRange=y_range, padding=0)
        self.redraw()

    def _y_range(self) -> tuple[float, float] | None:
        """The y range to show now, or None to leave it."""
        return None

    def redraw(self, *_) -> None:
        self.plot_widget.viewport().update()

    def set_marker(self, samples: float | None) -> None:
        """Mark the moment ``samples`` (samples seen) on the curves, or None: no mark."""
        if samples is None:
            self.marker.hide()
        else:
            self.marker.setValue(samples)
            self.marker.show()
        self.redraw()

    def _on_manual_range(self, *_) -> None:
        self.follow, self._shown = False, None

    def point_count(self) -> int:
        return sum(len(h) for h in self.histories.values())

    def apply_theme(self, theme: Theme) -> None:
        self._theme = theme
        self.plot_widget.setBackground(theme.plot_bg)
        self.marker.setPen(pg.mkPen(theme.text, width=1, style=Qt.DashLine))
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(pg.mkPen(theme.muted))
            axis.setTextPen(pg.mkPen(theme.text))
        self._style(theme)
        for item in self.previous + [i for b in self.branches for i in b]:
            self._style_ghost(item)
        self._relabel()
        self.redraw()

    def legend_html(self, theme: Theme) -> str:
        """The legend as the plot's title line, so it never covers a curve."""
        parts = []
        for item in self.curves.values():
            if item.opts.get("symbol"):
                color = item.opts["symbolBrush"].color().name()
                mark = "●" if item.opts["symbol"] == "o" else "■"
            else:
                color = item.opts["pen"].color().name()
                mark = "━"
            parts.append(f"<span style='color:{color}'>{mark}</span>"
                         f"<span style='color:{theme.text}'>&nbsp;{item.legend_name}</span>")
        for items, mark, name in ((self.branches, "╌", "abandoned"),
                                  (self.previous, "┈", "previous run")):
            if items:
                parts.append(f"<span style='color:{theme.muted}'>{mark}&nbsp;{name}</span>")
        return "&nbsp;&nbsp;".join(parts)

    def _style(self, theme: Theme) -> None:  # pragma: no cover - overridden
        pass

    def _style_points(self, theme: Theme) -> None:
        """The epoch and test curves: points joined by faint dashes."""
        for key, color in (("epoch", theme.accent), ("test", theme.good)):
            self.curves[key].setPen(pg.mkPen(faint(color), width=1, style=Qt.DashLine))
            self.curves[key].setSymbolBrush(color)
            self.curves[key].setSymbolPen(theme.plot_bg)


class LossPanel(_CurvePanel):
    def __init__(self, parent=None):
        super().__init__("loss (cross-entropy)", parent=parent)
        self._add("raw", "step")
        self._add("smooth", "smoothed")
        self._add("epoch", "epoch", capacity=1024, symbol="o", symbolSize=7)
        self._add("test", "test", capacity=1024, symbol="s", symbolSize=7)
        self.ghost_keys = ("smooth", "epoch", "test")
        self.plot.enableAutoRange(y=False)
        log_ticks(self.plot.getAxis("left"))
        self.plot_widget.setToolTip("step: each step's batch loss; smoothed: its moving "
                                    "average; epoch: mean train loss of each epoch; test: "
                                    "loss on the test split at each evaluation. Dashed: a "
                                    "branch left by going back; dotted: the previous run. "
                                    "Wheel: zoom; right-click: log scale")
        self._ema: float | None = None
        self.log_action = self.plot.getViewBox().menu.addAction("Log scale (loss)")
        self.log_action.setCheckable(True)
        self.log_action.toggled.connect(self.set_log)

    def set_log(self, log: bool) -> None:
        """Draw the loss on a log scale (spikes and small losses both readable)."""
        if self.log_action.isChecked() != log:
            self.log_action.setChecked(log)  # calls back here
            return
        self.plot.setLogMode(y=log)
        self.plot.setLabel("left", "loss (log scale)" if log
                           else "loss (cross-entropy)")
        self.follow, self._shown, self._dirty = True, None, True
        self.refresh()

    def _after_fork(self) -> None:
        smooth = self.histories["smooth"]
        self._ema = float(smooth.y[-1]) if len(smooth) else None

    def clear(self) -> None:
        super().clear()
        self._ema = None

    def add_steps(self, batch) -> None:
        """batch: a worker StepBatch."""
        smooth, self._ema = ema(batch.loss, alpha_for(batch.batch, LOSS_WINDOW), self._ema)
        self.histories["raw"].extend(batch.samples, batch.loss)
        self.histories["smooth"].extend(batch.samples, smooth)
        self._dirty = True

    def add_epoch(self, samples: int, train_loss: float) -> None:
        self.histories["epoch"].extend([samples], [train_loss])
        self._dirty = True

    def add_test(self, samples: int, test_loss: float) -> None:
        self.histories["test"].extend([samples], [test_loss])
        self._dirty = True

    def _y_range(self) -> tuple[float, float] | None:
        """The y range follows the live smoothed, epoch and test curves, without their top
        2% (raw spikes of single samples, a blow-up before a rollback)."""
        values = [h.y for k, h in self.histories.items() if k != "raw" and len(h)]
        top = robust_top(values)
        if top is None:
            return None
        top = max(0.1, top * 1.15)
        if self.plot.getAxis("left").logMode:
            low = max(1e-3, float(min(v.min() for v in values)) * 0.8)
            return (np.log10(min(low, top / 10)), np.log10(top))
        return (0, top)

    def _style(self, theme: Theme) -> None:
        raw = QColor(theme.curve)
        raw.setAlpha(80 if theme.dark else 70)  # a faint band: single samples are noisy
        self.curves["raw"].setPen(pg.mkPen(raw, width=1))
        self.curves["smooth"].setPen(pg.mkPen(theme.curve2, width=2))
        self._style_points(theme)


class AccuracyPanel(_CurvePanel):
    def __init__(self, parent=None):
        super().__init__("accuracy", parent=parent)
        self.plot.setYRange(0, 1, padding=0.02)
        self.plot.getViewBox().setLimits(yMin=-0.02, yMax=1.02)
        self.plot.getAxis("left").setTicks(
            [[(v, f"{v:.0%}") for v in np.linspace(0, 1, 6)],
             [(v, "") for v in np.linspace(0, 1, 11)]])
        self._add("running", "train")
        self._add("epoch", "epoch", capacity=1024, symbol="o", symbolSize=7)
        self._add("test", "test", capacity=1024, symbol="s", symbolSize=7)
        self.ghost_keys = ("running", "epoch", "test")
        self.plot_widget.setToolTip("train: running accuracy over the last ~500 samples; "
                                    "epoch: train accuracy of each epoch; test: accuracy on "
                                    "the test split at each evaluation. Dashed: a branch left "
                                    "by going back; dotted: the previous run. Wheel: zoom")
        self.plot.enableAutoRange(y=False)
        self._ema: float | None = None

    def _after_fork(self) -> None:
        running = self.histories["running"]
        self._ema = float(running.y[-1]) if len(running) else None

    def _y_range(self) -> tuple[float, float] | None:
        return (-0.02, 1.02)

    def clear(self) -> None:
        super().clear()
        self._ema = None

    @property
    def running_accuracy(self) -> float | None:
        return self._ema

    def add_steps(self, batch) -> None:
        smooth, self._ema = ema(batch.accuracy, alpha_for(batch.batch, ACC_WINDOW), self._ema)
        self.histories["running"].extend(batch.samples, smooth)
        self._dirty = True

    def add_epoch(self, samples: int, train_accuracy: float) -> None:
        self.histories["epoch"].extend([samples], [train_accuracy])
        self._dirty = True

    def add_test(self, samples: int, test_accuracy: float) -> None:
        self.histories["test"].extend([samples], [test_accuracy])
        self._dirty = True

    def _style(self, theme: Theme) -> None:
        self.curves["running"].setPen(pg.mkPen(theme.curve2, width=2))
        self._style_points(theme)
