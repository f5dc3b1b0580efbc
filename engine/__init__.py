"""ConvScope's engine: a CNN in pure NumPy (never imports Qt, pyqtgraph or the visualizer)."""
from .layers import Conv2D, Dense, Flatten, Pool2D, ReLU, softmax, softmax_cross_entropy
from .model import PRESETS, Model, build_config, prepare_input
from .optim import SGD
from .train import DivergenceError, EpochReport, Snapshot, StepReport, Trainer, evaluate

__all__ = [
    "Conv2D", "Dense", "Flatten", "Pool2D", "ReLU", "softmax", "softmax_cross_entropy",
    "PRESETS", "Model", "build_config", "prepare_input", "SGD",
    "DivergenceError", "EpochReport", "Snapshot", "StepReport", "Trainer", "evaluate",
]
