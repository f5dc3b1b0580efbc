"""The model's prepared input of upcoming training samples, made a few hundred at a time.

The training images do not change, so the Trainer asks for the input of the next batch and
gets a slice of what was prepared (``Model.prepare``: the seed net's conv patches, a conv
stack's zero-bordered digits) for up to AHEAD_BYTES of samples at once, and never more than
the model takes in one pass: fewer, larger gathers.
"""
from __future__ import annotations

import numpy as np

from convscope.engine.net.model import prepare_input

AHEAD_BYTES = 6_300_000  # 256 digits of the seed net's conv patches


class Ahead:
    """``take(model, images, order, at, n)``: the prepared input of images[order[at:at+n]]."""

    def __init__(self):
        self._kept = None  # (order, model, first position, prepared input)
        self._per_sample: int | None = None  # bytes, known after the first batch

    def take(self, model, images, order, at: int, n: int):
        kept = self._kept
        if (kept is None or kept[0] is not order or kept[1] is not model
                or not kept[2] <= at <= at + n <= kept[2] + len(kept[3])):
            # (a batch above the model's largest would come back unprepared)
            ahead = n if self._per_sample is None else max(n, min(
                AHEAD_BYTES // self._per_sample, model.largest_batch()))
            prepared = model.prepare(prepare_input(images[order[at:at + ahead]]))
            data = prepared if isinstance(prepared, np.ndarray) else prepared.data
            self._per_sample = max(1, data.nbytes // max(1, len(data)))
            kept = self._kept = (order, model, at, prepared)
        start = at - kept[2]
        return kept[3][start:start + n]
