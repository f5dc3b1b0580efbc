"""ConvScope's engine: a CNN in pure NumPy (never imports Qt, pyqtgraph or the visualizer).

Start reading at ``convscope/engine/net/notes.py``: the design notes' network written with
plain loops. Then ``net/layers.py``, ``net/model.py``, ``net/optim.py``, ``net/train.py``.

    net/    the network a learner reads      fast/   speed-only kernels, kept equal to net/
    data/   datasets, downloads, drawings    files/  model files, atomic writes
    tools/  explain, gradcheck, saliency, metrics, timeline
"""
from convscope.engine.net.layers import (
    Conv2D,
    Dense,
    Flatten,
    Pool2D,
    ReLU,
    softmax,
    softmax_cross_entropy,
)
from convscope.engine.net.model import PRESETS, Model, build_config, prepare_input
from convscope.engine.net.optim import SGD
from convscope.engine.net.train import (
    DivergenceError,
    EpochReport,
    Snapshot,
    StepReport,
    Trainer,
    evaluate,
)

__all__ = [
    "Conv2D", "Dense", "Flatten", "Pool2D", "ReLU", "softmax", "softmax_cross_entropy",
    "PRESETS", "Model", "build_config", "prepare_input", "SGD",
    "DivergenceError", "EpochReport", "Snapshot", "StepReport", "Trainer", "evaluate",
]
