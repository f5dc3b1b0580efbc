"""Loss and accuracy curves against samples seen.

Loss: every step's batch loss (raw, faint), its light exponential smoothing, the train loss of
each epoch and the test loss of each evaluation. Accuracy: running train accuracy (smoothed
over about 500 samples), each epoch's train accuracy and each test accuracy. Histories are
bounded (``History``) and the plots downsample to the plot's width, so long runs stay fast.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QColor
from PyQt5.QtWidgets import QGraphicsView, QVBoxLayout, QWidget

from convscope.visualizer.history import History, alpha_for, ema
from convscope.visualizer.theme import Theme, cached

LOSS_WINDOW = 50.0  # samples the smoothed loss averages over (light smoothing)
ACC_WINDOW = 500.0  # samples the running train accuracy averages over
SMOOTH = ("smooth", "running")  # smoothed curves: downsampled by their mean, not min and max
NICE = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_end(x: float) -> float:
    """The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten)
    at or above x: the followed x axis grows in steps of at most 25%, so its ticks are laid
    out again a few times per decade of samples, not at every refresh."""
    if x <= 1.0:
        return 1.0
    scale = 10.0 ** np.floor(np.log10(x))
    return next(scale * n for n in NICE if scale * n >= x * (1 - 1e-9))


def faint(color: str, alpha: int = 110) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c


def label_once(axis: pg.AxisItem) -> None:
    """Make ``axis`` lay out its label again only when the label's text changes (pyqtgraph
    re-sets its HTML at every range change, which following the run makes every refresh)."""
    shown = [None]

    def update_label() -> None:
        text = axis.labelString()
        if text != shown[0]:
            shown[0] = text
            axis.label.setHtml(text)
            axis._adjustSize()
        axis.picture = None  # the ticks changed with the range
        axis.update()

    axis._updateLabel = update_label


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
            label_once(cached(self.plot.getAxis(name)))
        cached(self.plot.titleLabel)
        self.plot.getViewBox().setMouseEnabled(x=True, y=False)
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

    def _add(self, key: str, name: str, capacity: int = 8192, **style):
        item = self.plot.plot(**style)
        item.legend_name = name
        self.curves[key] = item
        self.histories[key] = History(capacity)
        return item

    def clear(self) -> None:
        for h in self.histories.values():
            h.clear()
        for item in self.curves.values():
            item.setData([], [])
        self._pushed.clear()
        self._shown = None
        self._dirty = False
        self.redraw()

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
        x_range = None
        if self.follow:
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
        self.plot.setTitle(self.legend_html(theme), size="8pt")
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
        return "&nbsp;&nbsp;".join(parts)

    def _style(self, theme: Theme) -> None:  # pragma: no cover - overridden
        pass


class LossPanel(_CurvePanel):
    def __init__(self, parent=None):
        super().__init__("loss (cross-entropy)", parent=parent)
        self._add("raw", "step")
        self._add("smooth", "smoothed")
        self._add("epoch", "epoch", capacity=1024, symbol="o", symbolSize=7)
        self._add("test", "test", capacity=1024, symbol="s", symbolSize=7)
        self.plot.enableAutoRange(y=False)
        self.plot_widget.setToolTip("step: each step's batch loss; smoothed: its moving "
                                    "average; epoch: mean train loss of each epoch; test: "
                                    "loss on the test split at each evaluation")
        self._ema: float | None = None

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
        """The y range follows the smoothed and test curves (raw spikes of single samples
        would otherwise flatten everything)."""
        tops = [h.y.max() for k, h in self.histories.items() if k != "raw" and len(h)]
        return (0, max(0.1, max(tops) * 1.15)) if tops else None

    def _style(self, theme: Theme) -> None:
        raw = QColor(theme.curve)
        raw.setAlpha(80 if theme.dark else 70)  # a faint band: single samples are noisy
        self.curves["raw"].setPen(pg.mkPen(raw, width=1))
        self.curves["smooth"].setPen(pg.mkPen(theme.curve2, width=2))
        self.curves["epoch"].setPen(pg.mkPen(faint(theme.accent), width=1, style=Qt.DashLine))
        self.curves["epoch"].setSymbolBrush(theme.accent)
        self.curves["epoch"].setSymbolPen(theme.plot_bg)
        self.curves["test"].setPen(pg.mkPen(faint(theme.good), width=1, style=Qt.DashLine))
        self.curves["test"].setSymbolBrush(theme.good)
        self.curves["test"].setSymbolPen(theme.plot_bg)


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
        self.plot_widget.setToolTip("train: running accuracy over the last ~500 samples; "
                                    "epoch: train accuracy of each epoch; test: accuracy on "
                                    "the test split at each evaluation")
        self.plot.enableAutoRange(y=False)
        self._ema: float | None = None

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
        self.curves["epoch"].setPen(pg.mkPen(faint(theme.accent), width=1, style=Qt.DashLine))
        self.curves["epoch"].setSymbolBrush(theme.accent)
        self.curves["epoch"].setSymbolPen(theme.plot_bg)
        self.curves["test"].setPen(pg.mkPen(faint(theme.good), width=1, style=Qt.DashLine))
        self.curves["test"].setSymbolBrush(theme.good)
        self.curves["test"].setSymbolPen(theme.plot_bg)
