"""What the Data box offers: the named datasets, and for a folder of class folders of
pictures the conversion of its pictures to 28x28 digits (the train command's --convert)."""
from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QComboBox

from convscope.engine.data.idx_sets import idx_sets

DATASETS = [("mini", "mini MNIST (embedded, 9k + 1k)"),
            ("mnist", "MNIST (60k + 10k, download)"),
            ("fashion", "Fashion-MNIST (download)")]
CONVERSIONS = [  # how a folder's pictures become 28x28 digits (engine/data/folders.py)
    ("mnist", "MNIST-style: crop, scale, centre",
     "Crop to the ink, scale it to 20 px and centre its mass in 28x28, as MNIST was made"),
    ("resize", "the whole picture, resized",
     "Scale the whole picture to 28x28 (inverted when its border is light)")]


def picture_folder(spec: str) -> bool:
    """True when ``spec`` is a folder without IDX files: a folder of class folders of
    pictures, whose conversion the Data box offers."""
    if spec in ("", *(s for s, _ in DATASETS)):
        return False
    try:
        return Path(spec).is_dir() and not idx_sets(Path(spec))
    except OSError:
        return True  # unreadable now: it says why on Reset


def conversion_combo() -> QComboBox:
    """The conversions, each with its tooltip; its current data is "mnist" or "resize"."""
    combo = QComboBox()
    for mode, text, tip in CONVERSIONS:
        combo.addItem(text, mode)
        combo.setItemData(combo.count() - 1, tip, Qt.ToolTipRole)
    combo.setToolTip("How each picture of the folder becomes a 28x28 digit (converted once, "
                     "then kept in the cache)")
    return combo
