"""What the GUI and the training worker say to each other: plain frozen dataclasses.

The GUI sends ``RunSettings`` (what Reset builds) and ``Hyper`` (applied at the next step);
the worker answers with ``RunInfo`` after every Reset, ``StepBatch`` for the steps since its
last progress signal and ``EvalReport`` for a test evaluation. The engine's own ``Snapshot``
and ``EpochReport`` (``engine.net.train``) travel unchanged; ``finite_snapshot`` makes a
snapshot safe to draw. No Qt here: every array is a copy (or read-only).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RunSettings:
    """What Reset builds: architecture, data, seed and the rest of the preset's recipe
    (engine/recipes.py; the learning rate, batch size and momentum live in Hyper)."""
    preset: str = "seed"
    filters: int | None = None  # None: the preset's default
    pool: str = "max"
    relu: bool | None = None  # None: the preset's default
    dataset: str = "mini"
    seed: int = 0
    epochs: int | None = None  # these seven None: the preset's recipe
    lr_schedule: str | None = None
    weight_decay: float | None = None
    nesterov: bool | None = None
    augment: tuple | None = None
    plain_epochs: int | None = None
    label_smoothing: float | None = None
    convert: str = "mnist"  # how a folder's pictures become digits (engine/data/folders.py)

    def filled(self) -> RunSettings:
        """These settings with every None replaced by the preset's default or recipe."""
        from convscope.engine.net.model import PRESETS
        from convscope.engine.recipes import RECIPES
        _, filters, relu, _ = PRESETS[self.preset]
        recipe = RECIPES.get(self.preset, RECIPES["seed"])
        given = {k: getattr(self, k) for k in RECIPE_FIELDS}
        values = {k: recipe[k] if v is None else v for k, v in given.items()}
        values["augment"] = tuple(values["augment"])
        return dataclasses.replace(self, filters=self.filters or filters,
                                   relu=relu if self.relu is None else self.relu, **values)


RECIPE_FIELDS = ("epochs", "lr_schedule", "weight_decay", "nesterov", "augment",
                 "plain_epochs", "label_smoothing")


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters applied at the next step."""
    lr: float = 0.005
    batch_size: int = 1
    momentum: float = 0.0


@dataclass(frozen=True)
class RunInfo:
    """Sent after a Reset: what is now training. x_test/y_test are read-only arrays."""
    settings: RunSettings
    config: dict
    layers: list  # [(name, kind, output shape)] of the network, as Model.layer_info() gives
    dataset: str
    class_names: list
    n_train: int
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class StepBatch:
    """Steps done since the last progress signal. Arrays have one entry per step."""
    step: np.ndarray  # (n,) int64, step number after the step
    samples: np.ndarray  # (n,) int64, samples seen after the step
    loss: np.ndarray  # (n,) float32, mean loss of the step's batch
    accuracy: np.ndarray  # (n,) float32, fraction of the batch classified right
    batch: np.ndarray  # (n,) int32, batch size of the step
    epoch: int
    lr: float
    samples_per_s: float  # over the span of this batch (0 when unknown)


@dataclass(frozen=True)
class Resumed:
    """Training went back to an earlier state: a Timeline resume or a divergence rollback.
    The curves fork there; the status bar shows this position at once."""
    step: int
    samples: int  # samples seen at that state
    epoch: int
    lr: float
    why: str  # "resume" or "rollback"


@dataclass(frozen=True)
class RecipeDone:
    """The recipe's epochs are done: training paused, its schedule is off, and Train goes on
    at ``lr`` (the schedule's last learning rate)."""
    epochs: int
    test_accuracy: float | None
    lr: float

    def text(self) -> str:
        score = "" if self.test_accuracy is None else \
            f", test accuracy {self.test_accuracy:.1%}"
        return (f"Recipe done: {self.epochs} epoch{'' if self.epochs == 1 else 's'}{score}. "
                f"Train continues at lr {self.lr:g}.")


@dataclass(frozen=True)
class EvalReport:
    step: int
    samples: int
    test_loss: float
    test_accuracy: float


def finite_snapshot(snapshot):
    """The snapshot with any NaN or infinity of the probe trace (weights that are finite but
    huge, just before a divergence) replaced by 0 or the largest float: never draw NaN."""
    trace = snapshot.probe_trace
    if not trace:
        return snapshot
    bad = [k for k, v in trace.items()
           if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all()]
    if not bad:
        return snapshot
    clean = dict(trace)
    for k in bad:
        big = np.finfo(trace[k].dtype).max
        clean[k] = np.nan_to_num(trace[k], nan=0.0, posinf=big, neginf=-big)
    return dataclasses.replace(snapshot, probe_trace=clean)
