"""The Recipe part of the controls: how long and how a Reset's run learns, beyond the live
hyperparameters (engine/recipes.py): epochs, learning-rate schedule, weight decay, Nesterov
momentum, label smoothing, the kinds of augmentation and the plain epochs that end it. A
one-line summary shows the whole recipe; the arrow opens the controls to edit it (kept folded
by default: the panel fits a 720-pixel screen)."""
from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from convscope.engine.data.augment import KINDS, MAGNITUDES
from convscope.engine.files.state_meta import MAX_SMOOTHING
from convscope.engine.schedules import LR_SCHEDULES

FIELDS = ("epochs", "lr_schedule", "weight_decay", "nesterov", "augment", "plain_epochs",
          "label_smoothing")


def summary(recipe: dict) -> str:
    """"12 epochs, cosine lr, Nesterov, wd 5e-04, augment: shift": a recipe in a line."""
    e = recipe["epochs"]
    parts = [f"{e} epoch{'' if e == 1 else 's'}", f"{recipe['lr_schedule']} lr"]
    if recipe["nesterov"]:
        parts.append("Nesterov")
    if recipe["weight_decay"]:
        parts.append(f"wd {recipe['weight_decay']:g}")
    if recipe.get("label_smoothing"):
        parts.append(f"label smoothing {recipe['label_smoothing']:g}")
    kinds = recipe["augment"]
    parts.append(f"augment: {', '.join(kinds)}" if kinds else "no augmentation")
    plain = recipe.get("plain_epochs", 0)
    if kinds and plain:
        parts[-1] += f" (the last {plain} epoch{'' if plain == 1 else 's'} plain)"
    return ", ".join(parts)


class RecipeBox(QWidget):
    """``changed`` follows every edit; ``recipe()`` is what the controls hold now."""

    changed = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.toggle = QToolButton()
        self.toggle.setAutoRaise(True)
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.RightArrow)
        self.toggle.setText("Recipe")
        self.toggle.setToolTip("How long and how the next run learns: epochs, learning-rate "
                               "schedule, weight decay, Nesterov, augmentation. Applied on "
                               "Reset; training pauses when its epochs are done.")
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setObjectName("recipeSummary")
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 999)
        self.epochs_spin.setToolTip("Epochs of the recipe: training pauses when they are done")
        self.schedule_combo = QComboBox()
        for name in LR_SCHEDULES:
            self.schedule_combo.addItem(name, name)
        self.schedule_combo.setToolTip(
            "How the learning rate moves over the recipe's epochs: constant; cosine, from the "
            "learning rate down to 0; onecycle, up to the learning rate over the first 30%, "
            "then down to almost 0")
        self.decay_spin = QDoubleSpinBox()
        self.decay_spin.setDecimals(5)
        self.decay_spin.setRange(0.0, 0.01)
        self.decay_spin.setSingleStep(1e-4)
        self.decay_spin.setToolTip("Weight decay: every weight is pulled towards 0 at each step")
        self.smooth_spin = QDoubleSpinBox()
        self.smooth_spin.setDecimals(2)
        self.smooth_spin.setRange(0.0, MAX_SMOOTHING)
        self.smooth_spin.setSingleStep(0.05)
        self.smooth_spin.setToolTip("Label smoothing: the loss's target keeps this share spread "
                                    "over every class (0.1: the label 0.91, each other class "
                                    "0.01), so the network is never pushed to certainty")
        self.nesterov_box = QCheckBox("Nesterov")
        self.nesterov_box.setToolTip("Look-ahead momentum: the gradient is taken where the "
                                     "momentum is about to carry the weights")
        self.kind_boxes = {kind: QCheckBox(kind) for kind in KINDS}
        for kind, box in self.kind_boxes.items():
            box.setToolTip(f"Augmentation: each training digit is {kind_text(kind)} at random, "
                           f"afresh every time it is seen")

        self.plain_spin = QSpinBox()
        self.plain_spin.setRange(0, 99)
        self.plain_spin.setPrefix("last ")
        self.plain_spin.setToolTip("Plain epochs: the recipe's last epochs train on the digits "
                                   "as they are, without augmentation, so that the network "
                                   "settles on digits like those it is tested on")

        self.details = QWidget()
        grid = QGridLayout(self.details)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setVerticalSpacing(4)
        grid.addWidget(QLabel("Epochs"), 0, 0)
        grid.addWidget(self.epochs_spin, 0, 1)
        grid.addWidget(QLabel("Schedule"), 0, 2)
        grid.addWidget(self.schedule_combo, 0, 3)
        grid.addWidget(QLabel("Decay"), 1, 0)
        grid.addWidget(self.decay_spin, 1, 1)
        grid.addWidget(self.nesterov_box, 1, 2, 1, 2)
        grid.addWidget(QLabel("Smooth"), 2, 0)
        grid.addWidget(self.smooth_spin, 2, 1)
        grid.addWidget(QLabel("Plain"), 2, 2)
        grid.addWidget(self.plain_spin, 2, 3)
        grid.addWidget(QLabel("Augment"), 3, 0)
        for box, (row, col) in zip(self.kind_boxes.values(),
                                   ((3, 1), (3, 2), (3, 3), (4, 1), (4, 2)), strict=True):
            grid.addWidget(box, row, col)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.details.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        top = QGridLayout()
        top.addWidget(self.toggle, 0, 0, Qt.AlignTop)
        top.addWidget(self.summary_label, 0, 1)
        top.setColumnStretch(1, 1)
        layout.addLayout(top)
        layout.addWidget(self.details)

        self.toggle.toggled.connect(self.set_open)
        self.epochs_spin.valueChanged.connect(self._edited)
        self.schedule_combo.currentIndexChanged.connect(self._edited)
        self.decay_spin.valueChanged.connect(self._edited)
        self.nesterov_box.toggled.connect(self._edited)
        self.plain_spin.valueChanged.connect(self._edited)
        self.smooth_spin.valueChanged.connect(self._edited)
        for box in self.kind_boxes.values():
            box.toggled.connect(self._edited)

    def set_open(self, shown: bool) -> None:
        """Show (or fold away) the controls under the summary."""
        self.toggle.blockSignals(True)
        self.toggle.setChecked(shown)
        self.toggle.blockSignals(False)
        self.toggle.setArrowType(Qt.DownArrow if shown else Qt.RightArrow)
        self.details.setVisible(shown)

    def set_recipe(self, recipe: dict) -> None:
        """Show ``recipe`` (its FIELDS) in the controls; one ``changed`` at the end."""
        widgets = (self.epochs_spin, self.schedule_combo, self.decay_spin, self.nesterov_box,
                   self.plain_spin, self.smooth_spin, *self.kind_boxes.values())
        for w in widgets:
            w.blockSignals(True)
        self.epochs_spin.setValue(int(recipe["epochs"]))
        self.schedule_combo.setCurrentIndex(max(0, self.schedule_combo.findData(
            recipe["lr_schedule"])))
        self.decay_spin.setValue(float(recipe["weight_decay"]))
        self.nesterov_box.setChecked(bool(recipe["nesterov"]))
        self.plain_spin.setValue(int(recipe.get("plain_epochs", 0)))
        self.smooth_spin.setValue(float(recipe.get("label_smoothing", 0.0)))
        for kind, box in self.kind_boxes.items():
            box.setChecked(kind in recipe["augment"])
        for w in widgets:
            w.blockSignals(False)
        self._edited()

    def recipe(self) -> dict:
        return {"epochs": self.epochs_spin.value(),
                "lr_schedule": self.schedule_combo.currentData(),
                "weight_decay": self.decay_spin.value(),
                "nesterov": self.nesterov_box.isChecked(),
                "augment": tuple(k for k, box in self.kind_boxes.items() if box.isChecked()),
                "plain_epochs": min(self.plain_spin.value(), self.epochs_spin.value()),
                "label_smoothing": self.smooth_spin.value()}

    def _edited(self, *_) -> None:
        self.summary_label.setText(summary(self.recipe()))
        self.changed.emit()


def kind_text(kind: str) -> str:
    """How augmentation ``kind`` distorts a digit (engine/data/augment.py, MAGNITUDES)."""
    m = MAGNITUDES.get(kind)
    return {"shift": f"shifted by up to {m:g} pixels", "rotate": f"turned by up to {m:g}°",
            "scale": f"grown or shrunk by up to {m:.0%}",
            "shear": f"slanted by up to {m:g}", "elastic": "bent by a smooth random field"
            }.get(kind, kind)
