"""Which network reads the Draw tab's digit: the shipped best network or the live one.

The shipped network (``assets/best.npz``, written by scripts/train_best.py) reads digits well
from the first second; the live one is the network being trained, as the window shows it.
Until the learner chooses, the shipped network reads while the live one is young (no test
score yet, or under ``LIVE_READY``), and the live one once it has learnt; every new run starts
on the shipped one again (the live one when the run's classes are not the digits). A choice
made in the selector is kept.
"""
from __future__ import annotations

import functools

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from convscope.engine.data.datasets import ASSETS
from convscope.engine.files.checkpoint import CheckpointError, load_model

SHIPPED_FILE = "best.npz"
LIVE_READY = 0.95  # test accuracy from which the live network reads by default
DIGITS = [str(d) for d in range(10)]


@functools.lru_cache(maxsize=1)
def shipped_network():
    """(model, class names, official test accuracy or None) of the shipped best network;
    raises CheckpointError or OSError when the file cannot be used."""
    model, _, extra = load_model(ASSETS / SHIPPED_FILE)
    accuracy = extra.get("official_test_accuracy")
    return model, extra.get("class_names") or DIGITS, (
        float(accuracy) if isinstance(accuracy, (int, float)) else None)


class NetworkChoice(QWidget):
    """The selector above the Draw tab's verdict. ``changed`` follows every change of the
    network used (``panel.set_model`` has been called by then)."""

    changed = pyqtSignal()

    def __init__(self, panel, parent=None):
        super().__init__(parent)
        self.panel = panel
        self.auto = True  # the learner has not chosen yet
        self.live: tuple | None = None  # (params, config, step) of the weights shown
        self.live_names = list(DIGITS)
        self.shipped_names = list(DIGITS)
        self.combo = QComboBox()
        # its width follows the room it is given: the longest text asks for no more
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(12)
        self.combo.addItem("Shipped best network", "shipped")
        self.combo.addItem("Live network (no weights yet)", "live")
        self.combo.setToolTip(
            "Which network reads your digit. Shipped: trained beforehand on the 9,000 "
            "embedded digits and shipped with the app. Live: the one you are training. Until "
            f"you choose, the shipped one reads while the live one scores under "
            f"{LIVE_READY:.0%} on the test digits.")
        try:
            model, self.shipped_names, accuracy = shipped_network()
            self.shipped = model
            score = f"{accuracy:.1%}, " if accuracy is not None else ""
            self.combo.setItemText(0, f"Shipped best network ({score}trained beforehand)")
        except (CheckpointError, OSError) as e:
            self.shipped = None
            self.combo.setItemText(0, "Shipped network (cannot be read)")
            self.combo.setItemData(0, str(e).split(". ")[0], 3)  # Qt.ToolTipRole
        label = QLabel("Read by")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 22, 0)  # the corner keeps room for the panel's "?"
        row.addWidget(label)
        row.addWidget(self.combo, 1)
        self.combo.activated.connect(self._on_chosen)
        self._select("shipped" if self.shipped is not None else "live")

    def using_shipped(self) -> bool:
        return self.combo.currentData() == "shipped"

    # ---- from the window -------------------------------------------------------------------
    def new_run(self, class_names) -> None:
        """A Reset: the live network is new again (and may name other classes)."""
        self.live_names = [str(n) for n in class_names]
        self.live = None
        self.combo.setItemText(1, "Live network (no weights yet)")
        if self.auto:
            self._select("shipped" if self._reads_digits() else "live", force=True)
        elif not self.using_shipped():
            self.panel.set_class_names(self.live_names)

    def set_live(self, params, config: dict, step: int) -> None:
        """The weights the window has just painted."""
        if self.live is None or self.live[2] != step:
            self.combo.setItemText(1, f"Live network (step {step:,})")
        self.live = (params, config, step)
        if not self.using_shipped():
            self.panel.set_model(params, config)

    def live_scored(self, accuracy: float) -> None:
        """A test evaluation of the live network: a learnt network reads by default."""
        if self.auto:
            young = not accuracy >= LIVE_READY
            self._select("shipped" if young and self._reads_digits() else "live")

    def choose(self, which: str) -> None:
        """The learner's choice, "shipped" or "live": kept from then on."""
        self.auto = False
        self._select(which, force=True)

    # ---- internals -------------------------------------------------------------------------
    def _on_chosen(self, index: int) -> None:
        self.choose(self.combo.itemData(index))

    def _reads_digits(self) -> bool:
        """The shipped network can be read and reads the run's classes (not clothes)."""
        return self.shipped is not None and self.live_names == list(self.shipped_names)

    def _select(self, which: str, force: bool = False) -> None:
        if which == "shipped" and self.shipped is None:
            which = "live"
        if not force and which == self.combo.currentData() and self.panel.model is not None:
            return
        self.combo.setCurrentIndex(self.combo.findData(which))
        if which == "shipped":
            self.panel.set_class_names(self.shipped_names)
            self.panel.set_model(self.shipped)
        else:
            self.panel.set_class_names(self.live_names)
            if self.live is not None:
                self.panel.weights = None  # the same weights again: classify with them anew
                self.panel.set_model(self.live[0], self.live[1])
            else:
                self.panel.model = None
                self.panel.set_model({})
        self.changed.emit()
