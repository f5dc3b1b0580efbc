"""Which digit the live views trace, and its caption: a test digit chosen by index, or a digit
the app gives (a drawing, an image file) with or without a known label.

A digit given with its trace (the Draw tab classifies a settled drawing once, with the probe's
full trace, on its copy of the weights the window shows) is shown at once, with no round trip
to the worker: the worker is told quietly and traces it from its next snapshot on. Should a
snapshot from before the worker took it arrive, the worker is asked for a fresh one.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from convscope.visualizer.messages import finite_snapshot


class ProbeChoice:
    def __init__(self, window):
        self.window = window
        self.index = 0  # the test digit, when not custom
        self.custom = False  # a digit the app gave
        self.custom_image: np.ndarray | None = None
        self.custom_label: int | None = None
        self._unconfirmed = None  # the input of a trace shown before the worker has it

    def set_image(self, image: np.ndarray, label: int | None, source: str,
                  traced: tuple | None = None) -> None:
        """Trace this digit (uint8 (28, 28), ink bright on 0) through the live network.
        ``traced``: (trace, params dict it was traced with), used when those are the weights
        shown now and training is paused."""
        w = self.window
        image = np.asarray(image)
        if image.shape != (28, 28):
            raise ValueError(f"a probe digit is 28x28, got {image.shape}")
        self.custom, self.custom_image, self.custom_label = True, np.array(image, np.uint8), label
        trace, params = traced or (None, None)
        shown = w.latest
        if (trace is not None and shown is not None and shown.params is params
                and w.moment is None and not w.running):
            w.worker.probe(self.custom_image, label, quiet=True)
            self._unconfirmed = trace["input"]
            w.latest = finite_snapshot(dataclasses.replace(shown, probe_trace=trace))
        else:
            self._unconfirmed = None
            w.worker.probe(self.custom_image, label)
        truth = "" if label is None else f", labelled {self.class_name(label)}"
        w.probe_panel.set_source(f"Probe: {source}{truth}.")

    def check(self, snapshot) -> None:
        """A snapshot came: does it trace the digit shown without a round trip?"""
        if self._unconfirmed is None:
            return
        trace = snapshot.probe_trace or {}
        if "input" in trace and np.array_equal(trace["input"], self._unconfirmed):
            self._unconfirmed = None  # the worker has it
        elif self.custom:  # taken before the worker had the digit: ask for one with it
            self._unconfirmed = None
            self.window.worker.probe(self.custom_image, self.custom_label)

    def set_index(self, index: int) -> None:
        """Trace test digit ``index`` of the current dataset."""
        self.custom, self.index, self._unconfirmed = False, int(index), None
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
