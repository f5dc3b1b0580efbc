"""Draw a digit and see how the network reads it.

A self-contained panel: the canvas, the 28x28 image the network receives, the class
probabilities with the top class and its confidence, and a saliency overlay for a chosen
class. It classifies with a private copy of a model given through ``set_model`` (a Model, a
trainer Snapshot or a params dict), in the GUI thread: one 28x28 image costs tens of
microseconds. Classification runs at the end of every stroke and at most ~30 times a second
while a stroke grows. ``probe_changed`` carries the settled drawing (uint8 (28, 28), or None
when the canvas is empty) so a main window can make it the probe digit.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PyQt5.QtCore import QRectF, QSize, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QFont, QFontMetricsF, QImage, QPainter, QPalette
from PyQt5.QtWidgets import (
    QBoxLayout,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
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

DIGITS = [str(d) for d in range(10)]
MIN_INTERVAL = 1 / 30  # seconds between classifications while a stroke grows
VIEW_SIDE = 4 * 28  # the 28x28 views, 4 screen pixels per input pixel
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif);;All files (*)"


def saliency_rgb(digit: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """The input dimmed to grey with the gradient over it: red where brightening a pixel
    raises the class score, blue where it lowers it; opacity follows |gradient|.

    digit: uint8 (28, 28); grad: float (28, 28) -> uint8 (28, 28, 3).
    """
    grey = digit.astype(np.float32)[..., None] * 0.35  # (28, 28, 1)
    scale = float(np.percentile(np.abs(grad), 99.5)) or 1.0
    g = np.clip(grad / scale, -1, 1)[..., None]  # (28, 28, 1) in [-1, 1]
    red = np.array([235, 60, 40], np.float32)
    blue = np.array([40, 120, 255], np.float32)
    color = np.where(g > 0, red, blue)  # (28, 28, 3)
    alpha = np.abs(g) ** 0.7
    return (grey * (1 - alpha) + color * alpha).clip(0, 255).astype(np.uint8)


def percent(p: float) -> str:
    """0.999997 -> '>99.9%', 0.00001 -> '<0.1%', 0.4567 -> '45.7%'."""
    if p > 0.999:
        return ">99.9%"
    if 0 < p < 0.0005:
        return "<0.1%"
    return f"{100 * p:.1f}%"


class PixelView(QWidget):
    """A small image (grey (h, w) or RGB (h, w, 3) uint8) scaled up with square pixels."""

    def __init__(self, placeholder: str = "", side: int = 140, parent=None):
        super().__init__(parent)
        self.setFixedSize(side, side)
        self.placeholder = placeholder
        self.array: np.ndarray | None = None
        self._image = QImage()

    def set_array(self, array: np.ndarray | None) -> None:
        self.array = None if array is None else np.ascontiguousarray(array, dtype=np.uint8)
        if self.array is not None:
            a = self.array
            h, w = a.shape[:2]
            if a.ndim == 2:
                self._image = QImage(a.data, w, h, w, QImage.Format_Grayscale8).copy()
            else:
                self._image = QImage(a.data, w, h, 3 * w, QImage.Format_RGB888).copy()
        self.update()

    def paintEvent(self, event):
        p = QPainter(self)
        pal = self.palette()
        if self.array is None:
            p.fillRect(self.rect(), pal.color(QPalette.Base))
            p.setPen(pal.color(QPalette.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignCenter | Qt.TextWordWrap, self.placeholder)
        else:
            p.drawImage(QRectF(self.rect()), self._image)  # nearest neighbour: square pixels
        p.setPen(pal.color(QPalette.Mid))
        p.drawRect(QRectF(0.5, 0.5, self.width() - 1, self.height() - 1))
        p.end()


class ProbabilityBars(QWidget):
    """Ten horizontal bars, one per class, the top class in the highlight colour."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.probs: np.ndarray | None = None
        self.class_names = list(DIGITS)
        self.paint_count = 0  # for the latency benchmark
        self.painted_at = 0.0
        self.setMinimumSize(200, 10 * 17)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def sizeHint(self):
        return QSize(240, 10 * 18)

    def set_probs(self, probs: np.ndarray | None) -> None:
        self.probs = None if probs is None else np.asarray(probs, dtype=np.float64)
        self.update()

    def paintEvent(self, event):
        p = QPainter(self)
        pal = self.palette()
        fm = p.fontMetrics()
        label_w = max(fm.horizontalAdvance(n) for n in self.class_names) + 8
        pct_w = fm.horizontalAdvance(">99.9%") + 6
        row = self.height() / 10
        top = -1 if self.probs is None else int(np.argmax(self.probs))
        bar_x, bar_w = label_w, max(10, self.width() - label_w - pct_w)
        for k in range(10):
            y = k * row
            p.setPen(pal.color(QPalette.Text if k == top else QPalette.PlaceholderText))
            p.drawText(QRectF(0, y, label_w - 6, row), Qt.AlignRight | Qt.AlignVCenter,
                       self.class_names[k])
            back = QRectF(bar_x, y + 3, bar_w, row - 6)
            p.fillRect(back, pal.color(QPalette.Base))
            if self.probs is None:
                continue
            v = float(self.probs[k])
            color = pal.color(QPalette.Highlight) if k == top else pal.color(QPalette.Mid)
            p.fillRect(QRectF(bar_x, y + 3, bar_w * v, row - 6), color)
            p.setPen(pal.color(QPalette.Text if k == top else QPalette.PlaceholderText))
            p.drawText(QRectF(bar_x + bar_w, y, pct_w, row), Qt.AlignRight | Qt.AlignVCenter,
                       percent(v))
        p.end()
        self.paint_count += 1
        self.painted_at = time.perf_counter()


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

        self.class_label = QLabel()
        self.confidence_label = QLabel()
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.4)
        self.confidence_label.setFont(font)
        self.input_view = PixelView("empty", side=VIEW_SIDE)
        self.input_view.setToolTip("The 28x28 image the network receives")
        self.saliency_view = PixelView("empty", side=VIEW_SIDE)
        self.saliency_view.setToolTip("Red: brightening the pixel raises the class score; "
                                      "blue: it lowers it")
        self.saliency_combo = QComboBox()
        self.saliency_combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)  # "Ankle boot"
        self.saliency_combo.addItem("top class", None)
        for k, name in enumerate(DIGITS):
            self.saliency_combo.addItem(name, k)
        self.saliency_legend = QLabel("red ↑ score · blue ↓ score")
        self.saliency_legend.setStyleSheet("color: gray;")
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 0.9)
        self.saliency_legend.setFont(font)
        self.prob_bars = ProbabilityBars()

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

        self.verdict = verdict = QBoxLayout(QBoxLayout.LeftToRight)
        verdict.addWidget(self.class_label)
        verdict.addWidget(self.confidence_label, 1, Qt.AlignLeft | Qt.AlignVCenter)
        self._fit_class_font(DIGITS)
        views = QGridLayout()
        views.setHorizontalSpacing(6)
        views.setVerticalSpacing(2)
        views.addWidget(QLabel("network input"), 0, 0)
        views.addWidget(QLabel("saliency"), 0, 1)
        views.addWidget(self.input_view, 1, 0)
        views.addWidget(self.saliency_view, 1, 1)
        sal_caption = QHBoxLayout()
        sal_caption.addWidget(QLabel("saliency for"))
        sal_caption.addWidget(self.saliency_combo)
        sal_caption.addStretch(1)
        views.addLayout(sal_caption, 2, 0, 1, 2)
        views.addWidget(self.saliency_legend, 3, 0, 1, 2)
        right = QVBoxLayout()
        right.addLayout(verdict)
        right.addWidget(self.prob_bars)
        right.addSpacing(4)
        right.addLayout(views)
        right.addStretch(1)

        top = QHBoxLayout(self)
        top.setContentsMargins(6, 6, 6, 6)
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
            self.model = source.copy()
        else:
            params = getattr(source, "params", source)
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

    def set_test_digits(self, images: np.ndarray, labels: np.ndarray | None = None) -> None:
        """Where "Test digit" picks from: uint8 (N, 28, 28) and labels (N,)."""
        self.test_images = images
        self.test_labels = labels

    def apply_theme(self, theme) -> None:
        """Follow a visualizer.theme.Theme (the rest of the panel follows the palette)."""
        self.error_label.setStyleSheet(f"color: {theme.bad};")
        for label in (self.source_label, self.saliency_legend):
            label.setStyleSheet(f"color: {theme.muted};")

    def set_class_names(self, names: list[str]) -> None:
        """The run's ten class names: on the bars, the saliency class selector and the label
        of a test digit."""
        self.prob_bars.class_names = [str(n) for n in names]
        for k, name in enumerate(self.prob_bars.class_names):
            self.saliency_combo.setItemText(k + 1, name)
        self._fit_class_font(self.prob_bars.class_names)
        self._show_prediction()

    def _fit_class_font(self, names) -> None:
        """The top class in big bold letters beside its confidence. Names too long for that
        ("T-shirt/top") go above it, in letters small enough not to widen the panel."""
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 3.2)
        font.setBold(True)
        room = max(2 * VIEW_SIDE + 6, self.prob_bars.sizeHint().width())
        sure = QFontMetricsF(self.confidence_label.font()).horizontalAdvance(">99.9% sure")
        widest = max(QFontMetricsF(font).horizontalAdvance(n) for n in names)
        stacked = widest + sure + 12 > room
        self.verdict.setDirection(QBoxLayout.TopToBottom if stacked else QBoxLayout.LeftToRight)
        if widest > room:
            font.setPointSizeF(font.pointSizeF() * room / widest)
        self.class_label.setFont(font)

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
        named = "" if label is None else f", labelled {self.prob_bars.class_names[label]}"
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
        self._predict()
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

    def _predict(self) -> None:
        if self.digit is None or self.model is None:
            self.probs = None
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
        names = self.prob_bars.class_names
        self.input_view.set_array(self.digit)
        if self.digit is None:
            self.class_label.setText("")
            self.confidence_label.setText("draw a digit")
        elif self.probs is None:
            self.class_label.setText("")
            self.confidence_label.setText("no model yet")
        else:
            k, p = self.prediction()
            self.class_label.setText(names[k])
            self.confidence_label.setText(f"{percent(p)} sure")
        self.class_label.setVisible(bool(self.class_label.text()))
        self.prob_bars.set_probs(self.probs)
        if self.grad is None or self.digit is None:
            self.saliency_view.set_array(None)
        else:
            self.saliency_view.set_array(saliency_rgb(self.digit, self.grad))


def attach(window, name: str = "Draw a digit") -> DrawPanel:
    """Add a DrawPanel to a visualizer MainWindow as a tab and wire it both ways: the weights
    the window has just painted -> the panel's private model; the settled drawing -> the
    window's probe digit (an empty canvas gives the probe back to the chosen test digit)."""
    panel = DrawPanel()
    window.add_panel(name, panel, "tab")

    def on_run(info) -> None:
        panel.set_test_digits(info.x_test, info.y_test)
        panel.set_class_names(info.class_names)

    def on_snapshot(snapshot) -> None:
        if window.info is not None:
            panel.set_model(snapshot.params, window.info.config)

    def on_probe(image) -> None:
        if image is None:
            window.set_probe_index(window.probe_panel.index_spin.value())
        else:
            window.set_probe(image, panel.probe_label, panel.probe_source)

    window.run_started.connect(on_run)
    window.snapshot_shown.connect(on_snapshot)
    panel.probe_changed.connect(on_probe)
    return panel
