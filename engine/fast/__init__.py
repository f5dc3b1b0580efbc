"""Speed only: work buffers, BLAS threading, packed pooling masks and fast passes.

Nothing here is new maths: every function computes what ``convscope.engine.net`` defines, and
the tests hold them equal (float64, 1e-10). A learner can skip this package entirely.

A fast pass runs a whole training pass of one family of networks in fewer, larger NumPy calls.
``Model`` asks ``plan(model)`` once, when it is built, and uses the pass for steps without a
trace; nothing above the model knows which pass ran. A fast pass offers:

    prepare(x)                     float images (N, 28, 28) -> the input it reads (sliceable
                                   along its first axis, e.g. gathered conv patches)
    loss_and_grads(inputs, labels, -> (per-sample losses (N,), probs (N, 10)); fills every
      smoothing)                   weight's gradient (the batch mean) in the layers' ``grads``
    max_batch (optional)           the largest batch it takes at once (default: Model.chunk)
    probs(x) (optional)            probabilities of float images, for Model.predict_proba
    flat_w, flat_g, views          every weight and every gradient in one flat array each, the
      (optional)                   layers' ``params`` and ``grads`` being views of them;
                                   views: [(layer, key, weight view, gradient view)]
"""
from __future__ import annotations

from convscope.engine.fast import fused, stack


class Prepared:
    """A batch in the form a fast pass reads (``Model.prepare``), sliceable like an array."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data  # (N, ...)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, rows: slice) -> Prepared:
        return Prepared(self.data[rows])


# (fits(model) -> bool, build(model) -> pass): the first that fits is used
PASSES = [
    (fused.supports, fused.FusedNet),  # conv -> [relu] -> pool -> flatten -> dense
    (stack.supports, stack.StackNet),  # (conv -> [relu] -> pool) x B -> dense layers
]


def plan(model):
    """The fast pass for ``model``'s layers, or None (then the layers run)."""
    for fits, build in PASSES:
        if fits(model):
            return build(model)
    return None
