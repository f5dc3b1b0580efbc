"""The "My digits" tab: the learner's own digits (engine/data/my_digits.py) as a gallery, and
fine-tuning the live run on them.

A drawing is added from the Draw tab ("Add to my digits as ..."). Here the set is shown by
class, digits are relabelled or deleted, the set is exported to or imported from a folder, and
"Train on my digits" fine-tunes the run on a mix of them and the dataset (the worker's
``run_job``; its steps are steps of the run, on the curves and the Timeline). The result
compares the held-back digits and the test split before and after.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QSize, Qt
from PyQt5.QtGui import QIcon, QImage, QPixmap
from PyQt5.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from convscope.engine.data.idx import DataError
from convscope.engine.data.my_digits import MyDigits
from convscope.visualizer import dialogs
from convscope.visualizer.jobs import FineTuneJob

SHOWN = 1000  # thumbnails in the gallery at most (the set may hold more)
THUMB = 56


def thumbnail(image: np.ndarray) -> QIcon:
    """A 28x28 uint8 digit as an icon, ink light on black as the network sees it."""
    pixels = np.ascontiguousarray(image, dtype=np.uint8)
    qimage = QImage(pixels.data, 28, 28, 28, QImage.Format_Grayscale8).copy()
    return QIcon(QPixmap.fromImage(qimage).scaled(THUMB, THUMB, Qt.KeepAspectRatio,
                                                  Qt.FastTransformation))


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def report_text(report) -> str:
    """One FineTuneReport in words."""
    if report is None:
        return "Fine-tuning was stopped before its first epoch ended."
    return (f"<b>Held back</b> ({report.n_held} of your digits, never trained on): "
            f"{percent(report.held_before)} → {percent(report.held_after)}<br>"
            f"<b>Test set</b>: {percent(report.test_before)} → {percent(report.test_after)}<br>"
            f"{report.epochs} epoch{'s' * (report.epochs != 1)}, {report.steps:,} steps on "
            f"{report.n_train} of your digits mixed with the dataset"
            + (f"; {report.skipped} of a class this network does not have were left out"
               if report.skipped else ""))


class MyDigitsView(QWidget):
    def __init__(self, store: MyDigits | None = None, parent=None):
        super().__init__(parent)
        self.store = store or MyDigits()
        self.class_names: list[str] = [str(d) for d in range(10)]
        self.worker = None  # the window's TrainWorker, for "Train on my digits"
        self.paths: list = []  # files of the digits shown, in gallery order
        self._build()
        self.refresh()

    def _build(self) -> None:
        self.filter_combo = QComboBox()
        self.count_label = QLabel()
        self.gallery = QListWidget()
        self.gallery.setViewMode(QListWidget.IconMode)
        self.gallery.setIconSize(QSize(THUMB, THUMB))
        self.gallery.setResizeMode(QListWidget.Adjust)
        self.gallery.setSelectionMode(QListWidget.ExtendedSelection)
        self.gallery.setMinimumHeight(2 * (THUMB + 24))
        self.relabel_combo = QComboBox()
        self.relabel_button = QPushButton("Relabel selected")
        self.delete_button = QPushButton("Delete selected")
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Add the digits of a folder holding one folder per class")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Copy your digits to a folder, one folder per class")
        self.share_spin = QSpinBox()
        self.share_spin.setRange(10, 100)
        self.share_spin.setSingleStep(10)
        self.share_spin.setValue(50)
        self.share_spin.setSuffix("% your digits")
        self.share_spin.setToolTip("Share of your digits in each fine-tuning epoch; the rest "
                                   "are digits of the dataset, so it is not forgotten")
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 50)
        self.epochs_spin.setValue(5)
        self.epochs_spin.setSuffix(" epochs")
        self.train_button = QPushButton("Train on my digits")
        self.result_label = QLabel("Draw digits in the Draw tab and add them here; one in five "
                                   "is held back to test the network on.")
        self.result_label.setWordWrap(True)
        self.folder_label = QLabel(f"Kept in {self.store.root}")
        self.folder_label.setStyleSheet("color: gray;")
        self.folder_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.folder_label.setToolTip(str(self.store.root))
        # a long path is cut at the panel's edge rather than widening the tab
        self.folder_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)

        top = QHBoxLayout()
        top.addWidget(QLabel("Show"))
        top.addWidget(self.filter_combo)
        top.addWidget(self.count_label, 1)
        edit = QHBoxLayout()
        edit.addWidget(self.relabel_button)
        edit.addWidget(QLabel("as"))
        edit.addWidget(self.relabel_combo)
        edit.addWidget(self.delete_button)
        edit.addStretch(1)
        edit.addWidget(self.import_button)
        edit.addWidget(self.export_button)
        train = QGridLayout()
        train.addWidget(self.share_spin, 0, 0)
        train.addWidget(self.epochs_spin, 0, 1)
        train.addWidget(self.train_button, 0, 2)
        train.addWidget(self.result_label, 1, 0, 1, 4)
        train.setColumnStretch(3, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.gallery, 1)
        layout.addLayout(edit)
        layout.addLayout(train)
        layout.addWidget(self.folder_label)

        self.filter_combo.currentIndexChanged.connect(lambda _: self.refresh())
        self.relabel_button.clicked.connect(self._relabel)
        self.delete_button.clicked.connect(self._delete)
        self.import_button.clicked.connect(self._import)
        self.export_button.clicked.connect(self._export)
        self.train_button.clicked.connect(self.train)
        self._set_classes()

    # ---- the set ------------------------------------------------------------------------
    def set_class_names(self, names: list[str]) -> None:
        self.class_names = [str(n) for n in names]
        self._set_classes()
        self.refresh()

    def _set_classes(self) -> None:
        shown = self.filter_combo.currentData()
        self.filter_combo.blockSignals(True)
        self.filter_combo.clear()
        self.filter_combo.addItem("all classes", None)
        for name in self.class_names:
            self.filter_combo.addItem(name, name)
        self.filter_combo.setCurrentIndex(max(0, self.filter_combo.findData(shown)))
        self.filter_combo.blockSignals(False)
        self.relabel_combo.clear()
        self.relabel_combo.addItems(self.class_names)

    def add(self, image: np.ndarray, label: str):
        """Keep a drawing (uint8 28x28) under class ``label``; returns its file."""
        path = self.store.add(image, label)
        self.refresh()
        return path

    def refresh(self) -> None:
        digits = self.store.load(self.filter_combo.currentData())
        self.gallery.clear()
        self.paths = digits.paths[:SHOWN]
        for image, name, path, held in zip(digits.images[:SHOWN], digits.labels,
                                           self.paths, digits.held_back, strict=False):
            item = QListWidgetItem(thumbnail(image), name + (" ·test" if held else ""))
            item.setToolTip(f"{name}: {path.name}" + ("\nheld back for testing" if held else ""))
            self.gallery.addItem(item)
        n = len(digits.labels)
        more = f" (showing {SHOWN:,})" if n > SHOWN else ""
        skipped = f", {digits.skipped} unreadable file(s) skipped" if digits.skipped else ""
        self.count_label.setText(f"{n:,} digit{'s' * (n != 1)}{more}{skipped}")
        self.train_button.setEnabled(n > 0 and self.worker is not None)

    def _selected(self) -> list:
        return [self.paths[self.gallery.row(item)] for item in self.gallery.selectedItems()]

    def _relabel(self) -> None:
        for path in self._selected():
            self.store.relabel(path, self.relabel_combo.currentText())
        self.refresh()

    def _delete(self) -> None:
        for path in self._selected():
            self.store.delete(path)
        self.refresh()

    def _import(self) -> None:
        folder = dialogs.ask_folder(self, "Import digits from a folder of class folders")
        if not folder:
            return
        try:
            added, skipped = self.store.import_folder(folder)
        except DataError as e:
            self.result_label.setText(str(e))
            return
        self.result_label.setText(f"Imported {added} digit(s)"
                                  + (f", skipped {skipped}" if skipped else "") + ".")
        self.refresh()

    def _export(self) -> None:
        folder = dialogs.ask_folder(self, "Export my digits to a folder")
        if folder:
            n = self.store.export(folder)
            self.result_label.setText(f"Exported {n} digit(s) to {folder}.")

    # ---- fine-tuning ---------------------------------------------------------------------
    def train(self) -> None:
        own = self.store.load()
        if self.worker is None or not len(own.labels):
            return
        self.train_button.setEnabled(False)
        self.result_label.setText("Training on your digits… (Pause stops it)")
        self.worker.run_job(FineTuneJob(own, tuple(self.class_names),
                                        self.share_spin.value() / 100, self.epochs_spin.value(),
                                        name="on my digits"))

    def show_report(self, report) -> None:
        self.result_label.setText(report_text(report))
        self.train_button.setEnabled(True)


class AddDrawing(QWidget):
    """The Draw tab's row: keep the drawing, as the network sees it, under a class."""

    def __init__(self, view: MyDigitsView, draw_panel, parent=None):
        super().__init__(parent)
        self.view, self.draw_panel = view, draw_panel
        self.label_combo = QComboBox()
        self.label_combo.setToolTip("The class your drawing shows")
        self.add_button = QPushButton("Add to my digits")
        self.add_button.setToolTip("Keep this drawing (28x28, as the network sees it) in your "
                                   "own set: the My digits tab shows it and trains on it")
        self.note = QLabel()
        self.note.setStyleSheet("color: gray;")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.add_button)
        row.addWidget(QLabel("as"))
        row.addWidget(self.label_combo)
        row.addWidget(self.note, 1)
        self.add_button.clicked.connect(self.add)
        draw_panel.prediction_changed.connect(self.follow)
        self.set_class_names(view.class_names)

    def set_class_names(self, names: list[str]) -> None:
        self.label_combo.clear()
        self.label_combo.addItems(names)

    def follow(self, probs) -> None:
        """The label offered is what the network reads (the learner corrects it if wrong)."""
        if probs is not None and len(probs) == self.label_combo.count():
            self.label_combo.setCurrentIndex(int(np.argmax(probs)))

    def add(self) -> None:
        digit = self.draw_panel.digit
        if digit is None:
            self.note.setText("draw a digit first")
            return
        label = self.label_combo.currentText()
        self.view.add(digit, label)  # the tab's gallery and count follow
        self.note.setText(f"added as {label}")


def attach(window, name: str = "My digits") -> MyDigitsView:
    """Add the tab to a MainWindow: the run's class names, the worker, the result, and a mark
    on the curves where each fine-tuning began."""
    view = MyDigitsView()
    view.worker = window.worker
    window.add_panel(name, view, "tab")
    adder = AddDrawing(view, window.draw_panel)
    window.draw_panel.add_tool(adder)
    view.adder = adder
    marks: list = []

    def on_run(info) -> None:
        view.set_class_names(info.class_names)
        adder.set_class_names(view.class_names)
        for panel, line in marks:
            panel.plot.removeItem(line)
        marks.clear()

    def on_done(report) -> None:
        view.show_report(report)
        if report is None or not report.steps:
            return
        for panel in (window.loss_panel, window.accuracy_panel):
            line = pg.InfiniteLine(pos=report.samples_before, angle=90,
                                   pen=pg.mkPen("#d08020", width=1, style=Qt.DotLine),
                                   label="my digits", labelOpts={"position": 0.5})
            line.setToolTip(f"Fine-tuned on your digits from here ({report.steps:,} steps)")
            panel.plot.addItem(line, ignoreBounds=True)
            marks.append((panel, line))

    window.run_started.connect(on_run)
    window.job_done.connect(on_done)
    view.refresh()
    return view
