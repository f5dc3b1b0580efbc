"""The evaluation view: test accuracy and loss, confusion matrix, per-class accuracy, mistakes.

The numbers come from ``engine.train.evaluate`` run on a private copy of the weights in a
``QThread`` of its own, so neither the GUI nor the training worker waits for it. The view never
touches the trainer's model: the main window hands it a config and a dict of weight copies
(``Snapshot.params`` or ``Trainer.get_state()["params"]``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from convscope.engine.net.model import Model
from convscope.engine.net.train import evaluate
from convscope.engine.tools.metrics import confusion_matrix, per_class_accuracy
from convscope.visualizer.evaluation_plots import (
    DIGITS,
    ConfusionPlot,
    PerClassPlot,
    ProbabilityPlot,
    ThumbnailDelegate,
    digit_pixmap,
)

GALLERY_LIMIT = 300  # thumbnails shown at once (most confident first)


@dataclass(frozen=True)
class EvaluationResult:
    """Everything the view shows, computed once. N test digits, 10 classes."""
    loss: float
    accuracy: float
    probs: np.ndarray  # (N, classes) float32
    labels: np.ndarray  # (N,) intp
    predictions: np.ndarray  # (N,) intp
    confusion: np.ndarray  # (classes, classes) int64, row = true class, column = predicted
    per_class: np.ndarray  # (classes,) float64, NaN for a class without digits
    step: int | None = None  # training step of the weights, when known

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted class (N,)."""
        return self.probs[np.arange(len(self.labels)), self.predictions]

    def cell(self, true: int, predicted: int) -> np.ndarray:
        """Indices of the digits of class ``true`` predicted as ``predicted``, most confident
        first."""
        idx = np.flatnonzero((self.labels == true) & (self.predictions == predicted))
        return idx[np.argsort(-self.confidence[idx], kind="stable")]

    def mistakes(self) -> np.ndarray:
        """Indices of every misclassified digit, most confident first."""
        idx = np.flatnonzero(self.labels != self.predictions)
        return idx[np.argsort(-self.confidence[idx], kind="stable")]


class Cancelled(Exception):
    """The evaluation was stopped before it finished."""


def evaluate_weights(config: dict, params: dict, images: np.ndarray, labels: np.ndarray,
                     step: int | None = None, progress=None, should_stop=None
                     ) -> EvaluationResult:
    """Evaluate a private model built from ``config`` and copies of ``params`` on uint8
    ``images`` (N, 28, 28) with ``labels`` (N,). ``progress(done, total)`` is called per chunk;
    ``should_stop()`` returning True raises Cancelled."""
    model = Model(config)
    model.set_params(params)
    labels = np.asarray(labels, dtype=np.intp)

    def report(done, total):
        if should_stop is not None and should_stop():
            raise Cancelled
        if progress is not None:
            progress(done, total)

    loss, accuracy, probs = evaluate(model, images, labels, progress=report)
    predictions = probs.argmax(axis=1)
    confusion = confusion_matrix(labels, predictions, model.classes)
    return EvaluationResult(loss, accuracy, probs, labels, predictions, confusion,
                            per_class_accuracy(confusion), step)


class EvaluationJob(QtCore.QObject):
    """Runs ``evaluate_weights`` once on its thread; never touches a widget."""
    progress = QtCore.pyqtSignal(int, int)  # done, total
    finished = QtCore.pyqtSignal(object)  # EvaluationResult
    failed = QtCore.pyqtSignal(str)
    done = QtCore.pyqtSignal()  # after finished / failed / cancel: the thread may quit

    def __init__(self, config, params, images, labels, step=None):
        super().__init__()
        self.args = (config, params, images, labels, step)
        self.cancelled = False

    def run(self) -> None:
        try:
            result = evaluate_weights(*self.args, progress=self.progress.emit,
                                      should_stop=lambda: self.cancelled)
            self.finished.emit(result)
        except Cancelled:
            pass
        except Exception as exc:  # noqa: BLE001 - reported, never escapes the slot
            self.failed.emit(f"evaluation failed: {exc}")
        self.done.emit()


# ---- the view ----------------------------------------------------------------------------
class EvaluationView(QtWidgets.QWidget):
    """Evaluate button + progress, summary, confusion matrix, per-class accuracy and a gallery
    of test digits (the mistakes, or the digits of a clicked cell), most confident first.

    The main window gives it the test split (``set_test_set``) and a ``weights_source``
    returning ``(config, params, step)`` copies or None; clicking a thumbnail emits
    ``probe_requested(index, image (28, 28) uint8, label)``.
    """
    probe_requested = QtCore.pyqtSignal(int, object, int)
    evaluated = QtCore.pyqtSignal(object)  # EvaluationResult
    error = QtCore.pyqtSignal(str)

    def __init__(self, parent=None, weights_source=None):
        super().__init__(parent)
        self.weights_source = weights_source
        self.images = np.zeros((0, 28, 28), np.uint8)
        self.labels = np.zeros(0, np.intp)
        self.class_names = list(DIGITS)
        self.result: EvaluationResult | None = None
        self.cell: tuple[int, int] | None = None
        self._thread: QtCore.QThread | None = None
        self._job: EvaluationJob | None = None

        self.evaluate_button = QtWidgets.QPushButton("Evaluate test set")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setFormat("not evaluated yet")
        self.progress_bar.setValue(0)
        self.summary_label = QtWidgets.QLabel("Press Evaluate to measure the current weights "
                                              "on the test split.")
        self.summary_label.setTextFormat(QtCore.Qt.RichText)
        # no word wrap (it would make the whole view height-for-width in a scroll area): a
        # narrow view clips the line instead, and the tooltip has it all
        self.summary_label.setSizePolicy(QtWidgets.QSizePolicy.Ignored,
                                         QtWidgets.QSizePolicy.Preferred)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.evaluate_button)
        top.addWidget(self.progress_bar, 1)

        self.confusion_plot = ConfusionPlot()
        self.confusion_plot.cell_clicked.connect(self.show_cell)
        self.per_class_plot = PerClassPlot()
        charts = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        charts.addWidget(self.confusion_plot)
        charts.addWidget(self.per_class_plot)
        charts.setStretchFactor(0, 3)
        charts.setStretchFactor(1, 2)

        self.gallery_label = QtWidgets.QLabel("Mistakes")
        self.gallery_label.setWordWrap(True)  # a narrow tab: two lines, never cut off
        self.gallery_label.setSizePolicy(QtWidgets.QSizePolicy.Ignored,
                                         QtWidgets.QSizePolicy.Preferred)
        self.mistakes_button = QtWidgets.QPushButton("Show all mistakes")
        self.mistakes_button.clicked.connect(lambda: self.show_cell(None))
        self.mistakes_button.setEnabled(False)
        self.gallery = QtWidgets.QListWidget()
        self.gallery.setViewMode(QtWidgets.QListView.IconMode)
        self.gallery.setIconSize(QtCore.QSize(56, 56))
        self.thumbnails = ThumbnailDelegate(self.gallery)
        self.gallery.setItemDelegate(self.thumbnails)
        self.gallery.setResizeMode(QtWidgets.QListView.Adjust)
        self.gallery.setMovement(QtWidgets.QListView.Static)
        self.gallery.setUniformItemSizes(True)
        self.gallery.itemClicked.connect(self._on_item_clicked)
        self.gallery.currentItemChanged.connect(lambda item, _: self._show_detail(item))
        self.detail_label = QtWidgets.QLabel(self._click_hint())
        self.detail_label.setWordWrap(True)
        self.probability_plot = ProbabilityPlot()
        detail = QtWidgets.QVBoxLayout()
        detail.addWidget(self.detail_label)
        detail.addWidget(self.probability_plot, 1)
        detail_box = QtWidgets.QWidget()
        detail_box.setLayout(detail)
        detail_box.setMinimumWidth(150)
        head = QtWidgets.QHBoxLayout()
        head.addWidget(self.gallery_label, 1)
        head.addWidget(self.mistakes_button)
        body = QtWidgets.QHBoxLayout()
        body.addWidget(self.gallery, 3)
        body.addWidget(detail_box, 1)
        bottom_box = QtWidgets.QWidget()
        bottom = QtWidgets.QVBoxLayout(bottom_box)
        bottom.setContentsMargins(0, 0, 0, 0)
        bottom.addLayout(head)
        bottom.addLayout(body, 1)

        split = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        split.addWidget(charts)
        split.addWidget(bottom_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary_label)
        layout.addWidget(split, 1)

    # ---- inputs ----------------------------------------------------------------------
    def set_test_set(self, images: np.ndarray, labels: np.ndarray, class_names=None) -> None:
        """uint8 images (N, 28, 28) and labels (N,) of the current dataset's test split."""
        self.cancel()
        self.images = np.asarray(images)
        self.labels = np.asarray(labels, dtype=np.intp)
        self.set_class_names(class_names or DIGITS)
        self.result = None
        self.gallery.clear()
        n = len(self.class_names)
        self.confusion_plot.set_confusion(np.zeros((n, n), np.int64))
        self.per_class_plot.set_accuracy(np.full(n, np.nan))
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("not evaluated yet")
        self.summary_label.setText(f"Test split: {len(self.labels):,} {self.noun}. "
                                   "Press Evaluate.")
        self.evaluate_button.setEnabled(len(self.labels) > 0)

    noun = "digits"  # what the test images are called in the texts

    def _click_hint(self) -> str:
        return f"Click {'a digit' if self.noun == 'digits' else 'an image'} to make it the probe."

    def set_class_names(self, names) -> None:
        """The run's class names, on every plot and caption."""
        self.class_names = [str(n) for n in names]
        self.noun = "digits" if self.class_names == [str(k) for k in range(10)] else "images"
        self.thumbnails.set_names(self.class_names)
        for plot in (self.confusion_plot, self.per_class_plot, self.probability_plot):
            plot.set_class_names(self.class_names)

    # ---- running ---------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None

    def evaluate(self) -> bool:
        """Ask ``weights_source`` for copies of the current weights and start evaluating."""
        weights = self.weights_source() if self.weights_source is not None else None
        if weights is None:
            self.error.emit("there are no weights to evaluate yet")
            return False
        return self.start(*weights)

    def start(self, config: dict, params: dict, step: int | None = None) -> bool:
        """Evaluate copies of ``params`` (built with ``config``) on the test split, off the GUI
        thread. A running evaluation is cancelled first."""
        if len(self.labels) == 0:
            self.error.emit("this dataset has no test split to evaluate on")
            return False
        self.cancel()
        params = {k: np.array(v, copy=True) for k, v in params.items()}
        self._job = EvaluationJob(config, params, self.images, self.labels, step)
        self._thread = QtCore.QThread(self)
        self._job.moveToThread(self._thread)
        self._thread.started.connect(self._job.run)
        self._job.progress.connect(self._on_progress)
        self._job.finished.connect(self._on_finished)
        self._job.failed.connect(self.error)
        self._job.done.connect(self._thread.quit)
        self._thread.finished.connect(self._on_thread_finished)
        self.progress_bar.setRange(0, len(self.labels))
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat(f"evaluating %v / %m {self.noun}")
        self.evaluate_button.setEnabled(False)
        self._thread.start()
        return True

    def cancel(self) -> None:
        """Stop a running evaluation and wait for its thread (at most one chunk)."""
        if self._thread is not None:
            self._job.cancelled = True
            self._release()

    def _on_thread_finished(self) -> None:
        if self._thread is not None and self.sender() is self._thread:  # not an older run's
            self._release()

    def _release(self) -> None:
        """Join the thread, then let go of it and of the job (never while it still runs)."""
        thread, job = self._thread, self._job
        thread.quit()
        thread.wait()
        self._thread = self._job = None
        thread.deleteLater()
        del job  # the job has no parent: dropping it deletes it, after its thread ended
        self.evaluate_button.setEnabled(len(self.labels) > 0)

    def _on_progress(self, done: int, total: int) -> None:
        if self.sender() is self._job:
            self.progress_bar.setValue(done)

    def _on_finished(self, result: EvaluationResult) -> None:
        if self.sender() is not self._job:
            return  # a cancelled run that still finished
        self.set_result(result)

    def note_step(self, step: int) -> None:
        """The weights are now at ``step``: say so when the numbers shown are older."""
        r = self.result
        if r is None or r.step is None or self.running or not self.isVisible():
            return
        text = f"evaluated {len(r.labels):,} {self.noun} at step {r.step:,}"
        if step != r.step:
            text += f"; training is now at step {step:,}"
        self.progress_bar.setFormat(text)

    # ---- showing ---------------------------------------------------------------------
    def set_result(self, result: EvaluationResult) -> None:
        self.result = result
        n = len(result.labels)
        self.progress_bar.setRange(0, max(n, 1))
        self.progress_bar.setValue(n)
        at = "" if result.step is None else f" at step {result.step:,}"
        self.progress_bar.setFormat(f"evaluated {n:,} {self.noun}{at}")
        self.summary_label.setText(
            f"Test accuracy <b>{100 * result.accuracy:.2f}%</b> · loss <b>{result.loss:.4f}</b>"
            f" · {n - int(np.trace(result.confusion)):,} mistakes in {n:,} {self.noun}")
        self.summary_label.setToolTip(self.summary_label.text().replace("<b>", "")
                                      .replace("</b>", ""))
        self.confusion_plot.set_confusion(result.confusion)
        self.per_class_plot.set_accuracy(result.per_class)
        self.show_cell(None)
        self.evaluated.emit(result)

    def show_cell(self, true: int | None, predicted: int | None = None) -> None:
        """List the digits of one confusion cell, or every mistake when ``true`` is None."""
        if self.result is None:
            return
        self.cell = None if true is None else (int(true), int(predicted))
        self.confusion_plot.select(self.cell)
        self.mistakes_button.setEnabled(self.cell is not None)
        if self.cell is None:
            indices = self.result.mistakes()
            title = f"{len(indices):,} mistakes"
        else:
            indices = self.result.cell(*self.cell)
            kind = "correct" if true == predicted else "mistaken"
            names = self.class_names
            title = (f"True {names[true]}, predicted {names[predicted]}: "
                     f"{len(indices):,} {kind} {self.noun}")
        shown = indices[:GALLERY_LIMIT]
        more = f" (the first {len(shown)})" if len(shown) < len(indices) else ""
        self.gallery_label.setText(f"<b>{title}</b>, most confident first{more}: "
                                   "click one to probe it")
        self._fill_gallery(shown)

    def _fill_gallery(self, indices: np.ndarray) -> None:
        r = self.result
        self.gallery.clear()
        for i in indices:
            true, pred, p = int(r.labels[i]), int(r.predictions[i]), r.probs[i]
            text = self.thumbnails.caption(true, pred, p[pred])
            item = QtWidgets.QListWidgetItem(QtGui.QIcon(digit_pixmap(self.images[i])), text)
            item.setData(QtCore.Qt.UserRole, int(i))
            item.setToolTip(self._describe(int(i)))
            self.gallery.addItem(item)
        self.probability_plot.set_probs(np.zeros(len(self.class_names)), -1, -1)
        self.detail_label.setText(self._click_hint())

    def _describe(self, i: int) -> str:
        r, names = self.result, self.class_names
        true, pred = int(r.labels[i]), int(r.predictions[i])
        return (f"#{i}: true {names[true]} ({100 * r.probs[i][true]:.1f}%), "
                f"predicted {names[pred]} ({100 * r.probs[i][pred]:.1f}%)")

    def _show_detail(self, item) -> None:
        if item is None or self.result is None:
            return
        i = int(item.data(QtCore.Qt.UserRole))
        self.detail_label.setText(self._describe(i))
        self.probability_plot.set_probs(self.result.probs[i], int(self.result.labels[i]),
                                        int(self.result.predictions[i]))

    def _on_item_clicked(self, item) -> None:
        i = int(item.data(QtCore.Qt.UserRole))
        self._show_detail(item)
        self.probe_requested.emit(i, self.images[i].copy(), int(self.labels[i]))

    def apply_theme(self, theme) -> None:
        """Restyle the plots in a ``visualizer.theme.Theme``."""
        for plot in (self.confusion_plot, self.per_class_plot, self.probability_plot):
            plot.apply_theme(theme)

    def closeEvent(self, event):  # noqa: N802 - Qt override
        self.cancel()
        super().closeEvent(event)
