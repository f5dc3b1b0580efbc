"""Which digit the live views trace, and its caption: a test digit chosen by index, or a digit
the app gives (a drawing, an image file) with or without a known label."""
from __future__ import annotations

import numpy as np


class ProbeChoice:
    def __init__(self, window):
        self.window = window
        self.index = 0  # the test digit, when not custom
        self.custom = False  # a digit the app gave
        self.custom_label: int | None = None

    def set_image(self, image: np.ndarray, label: int | None, source: str) -> None:
        """Trace this digit (uint8 (28, 28), ink bright on 0) through the live network."""
        image = np.asarray(image)
        if image.shape != (28, 28):
            raise ValueError(f"a probe digit is 28x28, got {image.shape}")
        self.custom, self.custom_label = True, label
        self.window.worker.probe(np.array(image, np.uint8), label)
        truth = "" if label is None else f", labelled {self.class_name(label)}"
        self.window.probe_panel.set_source(f"Probe: {source}{truth}.")

    def set_index(self, index: int) -> None:
        """Trace test digit ``index`` of the current dataset."""
        self.custom, self.index = False, int(index)
        self.window.probe_panel.set_index(index)
        self.window.worker.probe_test(int(index))
        self.describe()

    def label_known(self) -> bool:
        return not self.custom or self.custom_label is not None

    def class_name(self, label: int) -> str:
        info = self.window.info
        names = info.class_names if info else [str(k) for k in range(10)]
        return names[int(label)] if 0 <= int(label) < len(names) else str(label)

    def describe(self) -> None:
        """The caption of a test digit (a custom digit keeps the one it was given)."""
        info = self.window.info
        if self.custom or info is None or not len(info.y_test):
            return
        i = min(self.index, len(info.y_test) - 1)
        label = self.class_name(info.y_test[i])
        self.window.probe_panel.set_source(f"Test digit #{i} of {info.dataset}, "
                                           f"true class {label}.")
