"""Training controls: run, step, speed, live hyperparameters, and what Reset builds."""
from __future__ import annotations

import math
import random

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from convscope.engine.net.model import PRESETS
from convscope.engine.recipes import RECIPES
from convscope.visualizer.data_choice import DATASETS, conversion_combo, picture_folder
from convscope.visualizer.limits import LimitHints
from convscope.visualizer.messages import RECIPE_FIELDS, Hyper, RunSettings
from convscope.visualizer.recipe_box import RecipeBox

SPEEDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 0]  # steps per second; 0 = as fast as possible
def speed_text(speed: float) -> str:
    return "full speed" if speed <= 0 else f"{speed:g} step{'' if speed == 1 else 's'}/s"


class LrSpinBox(QDoubleSpinBox):
    """Learning rate: typed freely, arrows walk the 1-2-5 sequence (0.001, 0.002, 0.005...)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setDecimals(6)
        self.setRange(1e-5, 10.0)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt override
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text, pos):
        from PyQt5.QtGui import QValidator
        stripped = text.strip()
        if stripped in ("", ".", "-", "e"):
            return QValidator.Intermediate, text, pos
        try:
            v = float(stripped)
        except ValueError:
            return (QValidator.Intermediate if stripped[-1:] in "eE-+." else
                    QValidator.Invalid), text, pos
        ok = self.minimum() <= v <= self.maximum()
        return (QValidator.Acceptable if ok else QValidator.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt override
        ladder = [m * 10.0 ** e for e in range(-5, 2) for m in (1, 2, 5)]
        v = self.value()
        if steps > 0:
            up = [x for x in ladder if x > v * 1.0001]
            target = up[min(steps, len(up)) - 1] if up else v
        else:
            down = [x for x in ladder if x < v * 0.9999]
            target = down[max(-len(down), steps)] if down else v
        self.setValue(min(max(target, self.minimum()), self.maximum()))


class ControlsPanel(QWidget):
    """Signals carry plain values; only the main window connects them to the worker."""

    train_toggled = pyqtSignal()
    step_sample = pyqtSignal()
    step_batch = pyqtSignal()
    step_epoch = pyqtSignal()
    reset_requested = pyqtSignal(object)  # RunSettings
    hyper_changed = pyqtSignal(object)  # Hyper
    speed_changed = pyqtSignal(float)  # steps per second, 0 = full speed

    def __init__(self, settings: RunSettings, hyper: Hyper, parent=None):
        super().__init__(parent)
        self.applied = settings
        self.live = hyper  # the hyperparameters the run uses (the boxes may hold the next's)
        self._running = False

        # ---- run ------------------------------------------------------------------------
        self.train_button = QPushButton("▶  Train")
        self.train_button.setObjectName("train")
        self.train_button.setToolTip("Start or pause training (Space)")
        self.train_button.setMinimumHeight(32)
        self.train_button.clicked.connect(self.train_toggled.emit)
        self.step_sample_button = QPushButton("1 sample")
        self.step_sample_button.setToolTip("One SGD step on the next single sample (→)")
        self.step_batch_button = QPushButton("1 batch")
        self.step_batch_button.setToolTip("One SGD step on the next batch (Shift+→)")
        self.step_epoch_button = QPushButton("1 epoch")
        self.step_epoch_button.setToolTip("Train to the end of the current epoch, then "
                                          "evaluate on the test split")
        self.step_sample_button.clicked.connect(self.step_sample.emit)
        self.step_batch_button.clicked.connect(self.step_batch.emit)
        self.step_epoch_button.clicked.connect(self.step_epoch.emit)
        self.speed_slider = QSlider(Qt.Horizontal)
        self.speed_slider.setRange(0, len(SPEEDS) - 1)
        self.speed_slider.setValue(len(SPEEDS) - 1)
        self.speed_slider.setPageStep(1)
        self.speed_slider.setToolTip("From slow motion (one step a second) to full speed")
        self.speed_label = QLabel(speed_text(0))
        self.speed_label.setMinimumWidth(78)
        self.speed_slider.valueChanged.connect(self._on_speed)

        run_box = QGroupBox("Run")
        grid = QGridLayout(run_box)
        grid.setContentsMargins(8, 4, 8, 6)
        grid.setVerticalSpacing(5)
        grid.addWidget(self.train_button, 0, 0, 1, 4)
        grid.addWidget(QLabel("Step"), 1, 0)
        for col, b in enumerate((self.step_sample_button, self.step_batch_button,
                                 self.step_epoch_button), start=1):
            b.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
            grid.addWidget(b, 1, col)
        grid.addWidget(QLabel("Speed"), 2, 0)
        speed_row = QHBoxLayout()
        speed_row.addWidget(self.speed_slider, 1)
        speed_row.addWidget(self.speed_label)
        grid.addLayout(speed_row, 2, 1, 1, 3)

        # ---- live hyperparameters -------------------------------------------------------
        self.lr_spin = LrSpinBox()
        self.lr_spin.setValue(hyper.lr)
        self.lr_spin.setToolTip("Learning rate: w -= lr × gradient. Applied at the next step.")
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 60_000)
        self.batch_spin.setValue(hyper.batch_size)
        self.batch_spin.setKeyboardTracking(False)
        self.batch_spin.setToolTip("Samples per SGD step (1 = the notes' per-sample SGD)")
        self.momentum_spin = QDoubleSpinBox()
        self.momentum_spin.setRange(0.0, 0.99)
        self.momentum_spin.setSingleStep(0.1)
        self.momentum_spin.setDecimals(2)
        self.momentum_spin.setValue(hyper.momentum)
        self.momentum_spin.setKeyboardTracking(False)
        self.momentum_spin.setToolTip("v = momentum × v − lr × gradient; w += v")
        for spin in (self.lr_spin, self.batch_spin, self.momentum_spin):
            spin.valueChanged.connect(self._on_hyper)
        hyper_box = QGroupBox("Hyperparameters (applied live)")
        form = QGridLayout(hyper_box)
        form.setContentsMargins(8, 4, 8, 6)
        form.setVerticalSpacing(5)
        form.addWidget(QLabel("Learning rate"), 0, 0)
        form.addWidget(self.lr_spin, 0, 1, 1, 3)
        form.addWidget(QLabel("Batch size"), 1, 0)
        form.addWidget(self.batch_spin, 1, 1)
        form.addWidget(QLabel("Momentum"), 1, 2)
        form.addWidget(self.momentum_spin, 1, 3)

        # ---- network and data (on Reset) ------------------------------------------------
        self.preset_combo = QComboBox()
        for name, (_, _, _, text) in PRESETS.items():
            self.preset_combo.addItem(name, name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, text, Qt.ToolTipRole)
        self.filters_spin = QSpinBox()
        self.filters_spin.setRange(1, 64)
        self.pool_combo = QComboBox()
        for mode in ("max", "avg", "min"):
            self.pool_combo.addItem(mode, mode)
        self.pool_combo.setToolTip("How each 2×2 window is pooled (max: the notes')")
        self.relu_box = QCheckBox("ReLU")
        self.relu_box.setToolTip("A ReLU after each conv layer")
        self.dataset_combo = QComboBox()
        for spec, text in DATASETS:
            self.dataset_combo.addItem(text, spec)
        self.dataset_combo.addItem("Folder: IDX files or pictures…", "")
        self.convert_combo = conversion_combo()
        self.convert_label = QLabel("Pictures")
        self._pictures = False  # the Data box holds a folder of pictures
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Seeds the initial weights and the order of the samples: "
                                  "the same seed gives the same run")
        self.dice_button = QToolButton()
        self.dice_button.setText("⚄")
        self.dice_button.setToolTip("A new random seed")
        self.dice_button.clicked.connect(
            lambda: self.seed_spin.setValue(random.randrange(0, 100_000)))
        self.reset_button = QPushButton("⟲ Reset")
        self.reset_button.setToolTip("New weights from the seed, with the network and data "
                                     "chosen above (Ctrl+R)")
        self.reset_button.clicked.connect(lambda: self.reset_requested.emit(self.settings()))
        self.pending_label = QLabel("Changes apply on Reset.")
        self.pending_label.setObjectName("pending")
        self.pending_label.setWordWrap(True)
        self.pending_label.setVisible(False)
        self.recipe_box = RecipeBox()
        self.recipe_box.changed.connect(self._update_pending)
        self.preset_combo.currentIndexChanged.connect(self._on_preset)
        self.dataset_combo.activated.connect(self._on_dataset)
        for w in (self.filters_spin, self.seed_spin):
            w.valueChanged.connect(self._update_pending)
        self.dataset_combo.currentIndexChanged.connect(self._show_convert)
        for w in (self.pool_combo, self.dataset_combo, self.convert_combo):
            w.currentIndexChanged.connect(self._update_pending)
        self.relu_box.toggled.connect(self._update_pending)
        net_box = QGroupBox("Network and data (applied on Reset)")
        g = QGridLayout(net_box)
        g.setContentsMargins(8, 4, 8, 6)
        g.setVerticalSpacing(5)
        g.addWidget(QLabel("Preset"), 0, 0)
        g.addWidget(self.preset_combo, 0, 1)
        g.addWidget(QLabel("Filters"), 0, 2)
        g.addWidget(self.filters_spin, 0, 3)
        g.addWidget(QLabel("Pooling"), 1, 0)
        g.addWidget(self.pool_combo, 1, 1)
        g.addWidget(self.relu_box, 1, 2, 1, 2)
        g.addWidget(self.recipe_box, 2, 0, 1, 4)
        g.addWidget(QLabel("Data"), 3, 0)
        g.addWidget(self.dataset_combo, 3, 1, 1, 3)
        g.addWidget(self.convert_label, 4, 0)
        g.addWidget(self.convert_combo, 4, 1, 1, 3)
        g.addWidget(QLabel("Seed"), 5, 0)
        seed_row = QHBoxLayout()
        seed_row.setSpacing(2)
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.dice_button)
        g.addLayout(seed_row, 5, 1)
        g.addWidget(self.reset_button, 5, 2, 1, 2)
        g.addWidget(self.pending_label, 6, 0, 1, 4)
        g.setColumnStretch(1, 1)
        g.setColumnStretch(3, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(4)
        layout.addWidget(run_box)
        layout.addWidget(hyper_box)
        layout.addWidget(net_box)
        layout.addStretch(1)
        self.set_settings(settings)
        self._show_convert()
        self.limits = LimitHints(self)  # out-of-range input is answered with the reason
        for spin, what, why in (
                (self.lr_spin, "Learning rate", "at 1 the seed net soon blows up"),
                (self.batch_spin, "Batch size", "at most the training set's size"),
                (self.momentum_spin, "Momentum", "1 would never forget an old gradient"),
                (self.filters_spin, "Filters", ""),
                (self.seed_spin, "Seed", "")):
            self.limits.watch(spin, what, why)

    # ---- state from the main window -------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self._running = running
        self.train_button.setText("❚❚  Pause" if running else "▶  Train")
        self.train_button.setProperty("running", running)
        self.train_button.style().unpolish(self.train_button)
        self.train_button.style().polish(self.train_button)

    def set_busy(self, what: str | None) -> None:
        """A discrete run is under way (``what``, e.g. "1 epoch"), or None when it ended: the
        step buttons say so and refuse a second click until it is done; Pause stops it."""
        busy = bool(what)
        self.step_epoch_button.setText("running…" if what == "1 epoch" else "1 epoch")
        for b in (self.step_sample_button, self.step_batch_button, self.step_epoch_button):
            b.setEnabled(not busy)
        self.step_epoch_button.setToolTip(
            f"{what} is running: Pause (Space) stops it" if busy else
            "Train to the end of the current epoch, then evaluate on the test split")
        if not self._running:
            self.train_button.setText("❚❚  Pause" if busy else "▶  Train")

    def set_settings(self, settings: RunSettings) -> None:
        """Show ``settings`` in the widgets (without emitting Reset)."""
        self.preset_combo.blockSignals(True)
        self.preset_combo.setCurrentIndex(max(0, self.preset_combo.findData(settings.preset)))
        self.preset_combo.blockSignals(False)
        _, filters, relu, _ = PRESETS[settings.preset]
        self.filters_spin.setValue(settings.filters or filters)
        self.pool_combo.setCurrentIndex(max(0, self.pool_combo.findData(settings.pool)))
        self.relu_box.setChecked(relu if settings.relu is None else settings.relu)
        self._select_dataset(settings.dataset)
        self.convert_combo.setCurrentIndex(max(0, self.convert_combo.findData(settings.convert)))
        self.seed_spin.setValue(settings.seed)
        full = settings.filled()
        self.recipe_box.set_recipe({k: getattr(full, k) for k in RECIPE_FIELDS})

    def show_dataset(self, spec: str) -> None:
        """Show ``spec`` in the Data box (the data in use, after another could not load)."""
        self.dataset_combo.blockSignals(True)
        self._select_dataset(spec)
        self.dataset_combo.blockSignals(False)
        self._show_convert()
        self._update_pending()

    def set_applied(self, settings: RunSettings, n_train: int) -> None:
        """A run has started with ``settings`` and the hyperparameters in the boxes."""
        self.applied = settings
        self.live = self.hyper()
        self.batch_spin.setMaximum(max(1, n_train))
        self._update_pending()

    def settings(self) -> RunSettings:
        return RunSettings(self.preset_combo.currentData(), self.filters_spin.value(),
                           self.pool_combo.currentData(), self.relu_box.isChecked(),
                           self.dataset_combo.currentData() or "mini", self.seed_spin.value(),
                           **self.recipe_box.recipe(), convert=self.convert_combo.currentData())

    def hyper(self) -> Hyper:
        return Hyper(self.lr_spin.value(), self.batch_spin.value(), self.momentum_spin.value())

    def speed(self) -> float:
        return float(SPEEDS[self.speed_slider.value()])

    # ---- internals -----------------------------------------------------------------------
    def _on_speed(self, index: int) -> None:
        self.speed_label.setText(speed_text(SPEEDS[index]))
        self.speed_changed.emit(float(SPEEDS[index]))

    def show_lr(self, lr: float) -> None:
        """The run goes on at ``lr`` (the end of its recipe): shown, not sent back."""
        self.lr_spin.blockSignals(True)
        self.lr_spin.setValue(lr)
        self.lr_spin.blockSignals(False)
        self.live = Hyper(lr, self.live.batch_size, self.live.momentum)
        self._update_pending()

    def _on_hyper(self, *_) -> None:
        if math.isfinite(self.lr_spin.value()):
            self.live = self.hyper()
            self._update_pending()
            self.hyper_changed.emit(self.live)

    def _on_preset(self, *_) -> None:
        """A preset brings its whole recipe (engine/recipes.py), shown and still editable:
        its width, learning rate, batch size, momentum, epochs, schedule, weight decay,
        Nesterov and augmentation, all applied on Reset (an edit of a live box applies it)."""
        preset = self.preset_combo.currentData()
        _, filters, relu, _ = PRESETS[preset]
        r = RECIPES.get(preset, {})
        self.filters_spin.setValue(r.get("filters", filters))
        self.relu_box.setChecked(relu)
        if r:
            for spin, key in ((self.lr_spin, "lr"), (self.batch_spin, "batch_size"),
                              (self.momentum_spin, "momentum")):
                spin.blockSignals(True)
                spin.setValue(r[key])
                spin.blockSignals(False)
            self.recipe_box.set_recipe(r)
        self._update_pending()

    def _on_dataset(self, index: int) -> None:
        if self.dataset_combo.itemData(index):
            return
        folder = QFileDialog.getExistingDirectory(
            self, "Folder of IDX files, or of one folder of pictures per class")
        if folder:
            self._select_dataset(folder)
        else:
            self._select_dataset(self.applied.dataset)

    def _show_convert(self, *_) -> None:
        """The conversion is offered while the Data box holds a folder of pictures."""
        self._pictures = picture_folder(self.dataset_combo.currentData() or "")
        for w in (self.convert_label, self.convert_combo):
            w.setVisible(self._pictures)

    def _select_dataset(self, spec: str) -> None:
        i = self.dataset_combo.findData(spec)
        if i < 0:
            i = self.dataset_combo.count() - 1
            self.dataset_combo.insertItem(i, f"folder: {spec}", spec)
            self.dataset_combo.setItemData(i, spec, Qt.ToolTipRole)
        self.dataset_combo.setCurrentIndex(i)

    def _update_pending(self, *_) -> None:
        """Name what the boxes hold that the run does not use yet (applied on Reset)."""
        current, applied = self.settings(), self.applied.filled()
        names = [n for n in ("preset", "filters", "pool", "relu", "dataset", "seed",
                             *RECIPE_FIELDS, "convert")
                 if getattr(current, n) != getattr(applied, n)
                 and (n != "convert" or self._pictures)]
        names += [n for n in ("lr", "batch_size", "momentum")
                  if not math.isclose(getattr(self.hyper(), n), getattr(self.live, n))]
        words = {"lr": "learning rate", "lr_schedule": "schedule", "relu": "ReLU",
                 "dataset": "data", "pool": "pooling", "batch_size": "batch size",
                 "convert": "picture conversion"}
        shown = [words.get(n, n.replace("_", " ")) for n in names]
        self.pending_label.setText(f"Applies on Reset: {', '.join(shown)}.")
        self.pending_label.setVisible(bool(names))
