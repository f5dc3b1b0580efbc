"""Draw a digit and see how the network reads it.

A self-contained panel: the canvas, the 28x28 image the network receives, the class
probabilities (the app's one bar chart, ``prob_chart.ProbChart``) with the top class and its
confidence, and a saliency overlay for a chosen class (these views in ``draw_views.py``).

It classifies with a private copy of a model given through ``set_model`` (a Model, a trainer
Snapshot or a params dict), in the GUI thread: one 28x28 image costs tens of microseconds.
While a stroke grows it classifies at most ~30 times a second; a settled drawing (a finished
stroke, a test digit, an image file) is classified once, with its full forward and backward
trace (``trace``, as ``Trainer.probe_trace`` makes it) so that a main window can show it in its
other views without classifying it again. ``probe_changed`` carries the settled drawing (uint8
(28, 28), or None when the canvas is empty) so a main window can make it the probe digit.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from convscope.engine.data.idx import DataError
from convscope.engine.net.layers import softmax
from convscope.engine.net.model import Model, prepare_input
from convscope.engine.tools.saliency import saliency
from convscope.visualizer import dialogs
from convscope.visualizer.canvas import DrawCanvas
from convscope.visualizer.draw_views import InputViews, Verdict, percent
from convscope.visualizer.prob_chart import ProbChart, bar_colours
from convscope.visualizer.probs import guessing, short_name

DIGITS = [str(d) for d in range(10)]
MIN_INTERVAL = 1 / 30  # seconds between classifications while a stroke grows
VIEW_SIDE = 4 * 28  # the 28x28 views, 4 screen pixels per input pixel
CHART_HEIGHT = 200  # the probability bars
CHART_WIDTH = (240, 320)  # at least, and when there is room: ten bars with percentages
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif);;All files (*)"


class DrawPanel(QWidget):
    """Signals: ``probe_changed(object)``: uint8 (28, 28) or None, when the drawing settles;
    ``prediction_changed(object)``: probabilities (10,) or None; ``error(str)``: a file that
    could not be used (the message is also shown in ``error_label``)."""

    probe_changed = pyqtSignal(object)
    prediction_changed = pyqtSignal(object)
    error = pyqtSignal(str)

    def __init__(self, parent=None, model: Model | None = None):
        super().__init__(parent)
        self.model: Model | None = None  # private copy, never the training model
        self.weights = None  # the params dict the private model was last given (or None)
        self.trace: dict | None = None  # the settled drawing's forward and backward trace
        self.digit: np.ndarray | None = None  # uint8 (28, 28) the network receives
        self.probs: np.ndarray | None = None  # (10,)
        self.grad: np.ndarray | None = None  # (28, 28) saliency of the shown class
        self.probe_label: int | None = None  # true label of a loaded test digit
        self.probe_source = "your drawing"  # what the probe is, in words
        self.test_images: np.ndarray | None = None  # uint8 (N, 28, 28)
        self.test_labels: np.ndarray | None = None
        self._emitted: tuple = (None, None)  # (digit, label) last announced
        self._stale = False
        self._last_classify = -np.inf
        self._rng = np.random.default_rng()
        self._theme = None  # a visualizer.theme.Theme once apply_theme is called
        self.class_names = list(DIGITS)
        self._build()
        if model is not None:
            self.set_model(model)
        self._show_prediction()

    # ---- layout ------------------------------------------------------------------------
    def _build(self) -> None:
        self.canvas = DrawCanvas(self)
        self.clear_button = QPushButton("Clear")
        self.undo_button = QPushButton("Undo")
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(4, 48)
        self.brush_spin.setValue(int(self.canvas.brush_width))
        self.brush_spin.setPrefix("brush ")
        self.brush_spin.setToolTip("Brush width in pixels")
        self.test_digit_button = QPushButton("Test digit")
        self.test_digit_button.setToolTip("Start from a random digit of the test set")
        self.open_button = QPushButton("Open image…")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d03030;")
        self.error_label.hide()
        self.source_label = QLabel()
        self.source_label.setStyleSheet("color: gray;")

        self.verdict = Verdict(room=2 * VIEW_SIDE + 6 + 10)
        self.class_label, self.confidence_label = self.verdict.class_label, self.verdict.label
        self.views = InputViews(VIEW_SIDE)
        self.input_view, self.saliency_view = self.views.input_view, self.views.saliency_view
        self.saliency_combo = self.views.saliency_combo
        self.prob_chart = ProbChart(with_logits=False, width_hint=CHART_WIDTH[1])
        self.prob_chart.setFixedHeight(CHART_HEIGHT)
        self.prob_chart.setMinimumWidth(CHART_WIDTH[0])

        buttons = QGridLayout()
        buttons.setSpacing(4)
        buttons.addWidget(self.clear_button, 0, 0)
        buttons.addWidget(self.undo_button, 0, 1)
        buttons.addWidget(self.brush_spin, 0, 2)
        buttons.addWidget(self.test_digit_button, 1, 0, 1, 2)
        buttons.addWidget(self.open_button, 1, 2)
        left = QVBoxLayout()
        left.addWidget(self.canvas)
        left.addLayout(buttons)
        left.addWidget(self.source_label)
        left.addWidget(self.error_label)
        left.addStretch(1)
        self.tools = left  # more rows under the canvas: add_tool

        right = QVBoxLayout()
        right.addWidget(self.verdict)
        right.addWidget(self.prob_chart)
        right.addSpacing(4)
        right.addWidget(self.views, 0, Qt.AlignLeft)
        right.addStretch(1)

        self.header = QVBoxLayout(self)  # a main window puts the network selector on top
        self.header.setContentsMargins(6, 6, 6, 6)
        top = QHBoxLayout()
        self.header.addLayout(top)
        top.addLayout(left)
        top.addSpacing(6)
        top.addLayout(right)
        top.addStretch(1)  # on a wide screen the panel keeps its shape, left-aligned

        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.timeout.connect(lambda: self._classify_canvas(settled=False))
        self.canvas.stroke_moved.connect(self._on_stroke_moved)
        self.canvas.ink_changed.connect(self._on_ink_changed)
        self.clear_button.clicked.connect(self.canvas.clear)
        self.undo_button.clicked.connect(self.canvas.undo)
        self.brush_spin.valueChanged.connect(self.canvas.set_brush_width)
        self.test_digit_button.clicked.connect(lambda: self.load_test_digit())
        self.open_button.clicked.connect(self._choose_file)
        self.saliency_combo.currentIndexChanged.connect(lambda _: self._update_saliency())

    # ---- inputs from the main window ---------------------------------------------------
    def set_model(self, source, config: dict | None = None) -> None:
        """Classify with ``source``: a Model (copied), a Snapshot or a {name: array} dict of
        weights (copied into the private model; ``config`` builds one when needed). Weights
        that do not fit leave the panel without a model until ones that fit arrive."""
        if isinstance(source, Model):
            self.model, self.weights = source.copy(), None
        else:
            params = getattr(source, "params", source)
            if params is self.weights and self.model is not None:
                return  # the weights it holds (a snapshot shown again): nothing to classify
            self.weights = params
            if config is not None and (self.model is None or self.model.config != config):
                self.model = Model(config)
            if self.model is not None:
                try:
                    self.model.set_params(params)
                except ValueError:  # another architecture (after a reset): wait for a Model
                    self.model = None
        if self.isVisible():
            self._predict()
        else:  # hidden (another tab): classify when shown, not 30 times a second for nobody
            self._stale = True

    def showEvent(self, event):
        super().showEvent(event)
        if self._stale:
            self._stale = False
            self._predict()

    def add_tool(self, widget: QWidget) -> None:
        """A row under the canvas's buttons (e.g. "Add to my digits")."""
        self.tools.insertWidget(self.tools.count() - 2, widget)

    def set_test_digits(self, images: np.ndarray, labels: np.ndarray | None = None) -> None:
        """Where "Test digit" picks from: uint8 (N, 28, 28) and labels (N,)."""
        self.test_images = images
        self.test_labels = labels

    def apply_theme(self, theme) -> None:
        """Follow a visualizer.theme.Theme (the rest of the panel follows the palette)."""
        self._theme = theme
        self.prob_chart.set_colors(theme.text, theme.muted, theme.plot_bg)
        self._show_prediction()
        self.error_label.setStyleSheet(f"color: {theme.bad};")
        for label in (self.source_label, self.views.legend):
            label.setStyleSheet(f"color: {theme.muted};")

    def set_class_names(self, names: list[str]) -> None:
        """The run's ten class names: on the bars, the saliency class selector and the label
        of a test digit."""
        self.class_names = [str(n) for n in names]
        self.prob_chart.set_labels([short_name(n) for n in self.class_names])
        self.views.set_class_names(self.class_names)
        self.verdict.fit(self.class_names)
        self._show_prediction()

    # ---- actions -----------------------------------------------------------------------
    def load_test_digit(self, index: int | None = None) -> None:
        """Put a test digit on the canvas (random when ``index`` is None)."""
        if self.test_images is None:
            try:
                from convscope.engine.data.datasets import load_dataset
                data = load_dataset("mini", progress=False)
            except (DataError, OSError) as e:
                self._fail(str(e))
                return
            self.set_test_digits(data.x_test, data.y_test)
        n = len(self.test_images)
        if n == 0:
            self._fail("the test set is empty")
            return
        i = int(self._rng.integers(n)) if index is None else int(index) % n
        label = None if self.test_labels is None else int(self.test_labels[i])
        self._clear_error()
        self.probe_label = label
        self.probe_source = f"test digit #{i} on the canvas"
        named = "" if label is None else f", labelled {self.class_names[label]}"
        self.source_label.setText(f"test digit #{i}{named}")
        self.canvas.set_base(self.test_images[i])  # classifies and announces the probe

    def open_image(self, path) -> bool:
        """Classify an image file (PNG/JPG, any size, either polarity). A file that is not an
        image shows a one-line error and changes nothing."""
        from convscope.engine.data.preprocess import load_image, preprocess_digit
        try:
            image = load_image(path)
            digit = preprocess_digit(image)
        except (DataError, OSError) as e:
            self._fail(str(e))
            return False
        if digit is None:
            self._fail(f"{Path(path).name}: no digit found (the image is blank)")
            return False
        self._clear_error()
        self.probe_label = None
        self.probe_source = Path(path).name
        self.source_label.setText(Path(path).name)
        self.canvas.set_base(digit)  # classifies and announces the probe
        return True

    def _choose_file(self) -> None:
        """Open button: ask for an image file; one that cannot be used is also explained in a
        dialog (the message stays beside the canvas until the next drawing)."""
        path = dialogs.ask_open_path(self, "Open an image of a digit", "", IMAGE_FILTER)
        if path and not self.open_image(path):
            dialogs.show_error(self, "Cannot classify this file", self.error_label.text())

    def _fail(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        self.error.emit(message)

    def _clear_error(self) -> None:
        self.error_label.clear()
        self.error_label.hide()

    # ---- classification ----------------------------------------------------------------
    def _on_stroke_moved(self) -> None:
        if self.error_label.isVisible():
            self._clear_error()
        wait = self._last_classify + MIN_INTERVAL - time.perf_counter()
        if wait <= 0:
            self._classify_canvas(settled=False)
        elif not self._throttle.isActive():
            self._throttle.start(int(wait * 1000) + 1)

    def _on_ink_changed(self) -> None:
        if self.canvas.is_empty() or self.canvas.strokes:  # drawn over: the label no longer holds
            self.probe_label = None
            self.probe_source = "your drawing"
            self.source_label.clear()
        self._classify_canvas(settled=True)

    def _classify_canvas(self, settled: bool) -> None:
        """Preprocess the canvas and classify it; when ``settled``, announce the probe."""
        from convscope.engine.data.preprocess import preprocess_digit
        self._throttle.stop()
        self._last_classify = time.perf_counter()
        self.digit = None if self.canvas.is_empty() else preprocess_digit(self.canvas.ink_array())
        self._predict(settled)
        if settled:
            old, old_label = self._emitted
            same = old_label == self.probe_label and (
                (old is None and self.digit is None) or (
                    old is not None and self.digit is not None
                    and np.array_equal(old, self.digit)))
            if not same:
                image = None if self.digit is None else self.digit.copy()
                self._emitted = (image, self.probe_label)
                self.probe_changed.emit(image)

    def _predict(self, settled: bool = False) -> None:
        """Classify the digit; ``settled``: with its full trace (the probe's, label 0 for a
        drawing without one), kept in ``trace``."""
        self.trace = None
        if self.digit is None or self.model is None:
            self.probs = None
        elif settled:
            x = prepare_input(self.digit[None]).astype(self.model.dtype)  # (1, 28, 28)
            trace: dict = {}
            label = 0 if self.probe_label is None else int(self.probe_label)
            self.model.loss_and_grads(x, np.array([label]), trace)
            self.probs, self.trace = trace["probs"][0], trace
        else:
            x = prepare_input(self.digit[None]).astype(self.model.dtype)  # (1, 28, 28)
            self.probs = softmax(self.model.forward(x))[0]
        self._update_saliency(show=False)
        self._show_prediction()
        self.prediction_changed.emit(self.probs)

    def saliency_class(self) -> int | None:
        chosen = self.saliency_combo.currentData()
        if chosen is not None:
            return int(chosen)
        return None if self.probs is None else int(np.argmax(self.probs))

    def _update_saliency(self, show: bool = True) -> None:
        c = self.saliency_class()
        if self.digit is None or self.model is None or c is None:
            self.grad = None
        else:
            x = prepare_input(self.digit).astype(self.model.dtype)  # (28, 28)
            self.grad = saliency(self.model, x, c)
        if show:
            self._show_prediction()

    def prediction(self) -> tuple[int, float] | None:
        """(top class, its probability), or None when there is nothing to classify."""
        if self.probs is None:
            return None
        k = int(np.argmax(self.probs))
        return k, float(self.probs[k])

    def _show_prediction(self) -> None:
        names = self.class_names
        if self.digit is None:
            self.verdict.show_text("", "draw a digit")
        elif self.probs is None:
            self.verdict.show_text("", "no model yet")
        else:
            k, p = self.prediction()
            self.verdict.show_text(names[k], f"guessing ({percent(p)})"
                                   if guessing(p, len(names)) else f"{percent(p)} sure")
        colours = [] if self.probs is None else bar_colours(self.probs, self.probe_label,
                                                            self._theme, self.palette())
        self.prob_chart.set_bars(None, self.probs, colours)
        self.views.show_saliency(self.digit, self.grad)


def attach(window, name: str = "Draw a digit") -> DrawPanel:
    """Add a DrawPanel to a visualizer MainWindow as a tab and wire it both ways: the network
    chosen in its selector (``draw_networks``: the shipped one, or the weights the window has
    just painted) -> the panel's private model; the settled drawing, with the trace it was
    classified with and the weights of that trace -> the window's probe digit (an empty
    canvas gives the probe back to the chosen test digit)."""
    from convscope.visualizer.draw_networks import NetworkChoice
    panel = DrawPanel()
    panel.networks = NetworkChoice(panel)
    panel.header.insertWidget(0, panel.networks)
    window.add_panel(name, panel, "tab")

    def on_run(info) -> None:
        panel.set_test_digits(info.x_test, info.y_test)
        panel.networks.new_run(info.class_names)

    def on_snapshot(snapshot) -> None:
        if window.info is not None:
            panel.networks.set_live(snapshot.params, window.info.config, snapshot.step)

    def on_probe(image) -> None:
        if image is None:
            window.set_probe_index(window.probe_panel.index_spin.value())
        else:  # a trace made by the shipped network is not the live network's
            traced = None if panel.networks.using_shipped() else (panel.trace, panel.weights)
            window.set_probe(image, panel.probe_label, panel.probe_source, traced=traced)

    window.run_started.connect(on_run)
    window.snapshot_shown.connect(on_snapshot)
    window.evaluated.connect(lambda report: panel.networks.live_scored(report.test_accuracy))
    panel.probe_changed.connect(on_probe)
    return panel
