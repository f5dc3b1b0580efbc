"""SGD with optional momentum, Nesterov momentum and weight decay: the only place weights
change. And the learning-rate schedules: how lr moves over a run.

    g = grad + weight_decay * w                       (weight decay: pulls weights to 0)
    plain:     w -= lr * g
    momentum:  v = momentum * v - lr * g;  w += v
    Nesterov:  v = momentum * v - lr * g;  w += momentum * v - lr * g
               (the step looks ahead along the new velocity before adding the gradient)
"""
from __future__ import annotations

import math

import numpy as np

from convscope.engine.fast.flat import flat_velocity

# How the learning rate changes from epoch to epoch. A schedule is plain data, kept with the
# training state: {"name": "cosine", "base_lr": 0.05, "start_epoch": 0, "epochs": 2}.
LR_SCHEDULES = ("constant", "cosine", "onecycle")
# onecycle: from base_lr / ONECYCLE_DIV up to base_lr over the first ONECYCLE_WARMUP of the
# run, then down along a cosine to almost 0 (base_lr / ONECYCLE_DIV / ONECYCLE_FINAL_DIV).
ONECYCLE_WARMUP = 0.3
ONECYCLE_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4


def schedule_lr(schedule: dict, epoch: float) -> float:
    """The learning rate at ``epoch`` (0-based, as ``Trainer.epoch`` counts them; a fraction
    is the part of an epoch done): base_lr throughout (constant); cosine from base_lr at
    start_epoch towards 0 over ``epochs``, one value per whole epoch; or onecycle, changing
    at every step: up from base_lr / 25 to base_lr over the first 30% of the epochs, then down
    along a cosine to base_lr / 250,000."""
    base = schedule["base_lr"]
    name = schedule["name"]
    if name == "cosine":
        t = math.floor(epoch) - schedule["start_epoch"]
        return base * 0.5 * (1 + math.cos(math.pi * t / schedule["epochs"]))
    if name != "onecycle":
        return base
    t = min(max((epoch - schedule["start_epoch"]) / schedule["epochs"], 0.0), 1.0)
    low = base / ONECYCLE_DIV
    if t < ONECYCLE_WARMUP:
        return low + (base - low) * t / ONECYCLE_WARMUP
    end = low / ONECYCLE_FINAL_DIV
    u = (t - ONECYCLE_WARMUP) / (1 - ONECYCLE_WARMUP)
    return end + (base - end) * 0.5 * (1 + math.cos(math.pi * u))


class SGD:
    """The update above on every weight; ``velocity`` keeps v per weight key."""

    def __init__(self, lr: float = 0.005, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        self.velocity: dict[str, np.ndarray] = {}
        self._flat = None  # (fast pass, flat velocity, [(key, view)]): fast/flat.py
        self._work: np.ndarray | None = None  # lr * grad of a flat update

    def step(self, model) -> None:
        """Update every weight of ``model`` from the gradients of its last pass."""
        flat = model.flat_pass()
        if flat is None:
            self.update(model.weights())
            return
        w, g = flat.flat_w, flat.flat_g  # the same update on one flat array
        if self.weight_decay:
            g = g + w.dtype.type(self.weight_decay) * w
        if self._work is None or self._work.shape != w.shape or self._work.dtype != w.dtype:
            self._work = np.empty_like(w)
        step = np.multiply(g, w.dtype.type(self.lr), out=self._work)
        if self.momentum:
            v = flat_velocity(self, flat)
            v *= w.dtype.type(self.momentum)
            v -= step
            if self.nesterov:
                w += w.dtype.type(self.momentum) * v - step
            else:
                w += v
        else:
            w -= step

    def update(self, weights: list) -> None:
        """The step on (key, weight, gradient) triples, e.g. ("dense1.W", W, dW)."""
        lr, momentum, decay = self.lr, self.momentum, self.weight_decay
        for key, w, g in weights:
            if decay:
                g = g + w.dtype.type(decay) * w  # a new array: the layer's gradient stays
            if momentum:
                v = self.velocity.get(key)
                if v is None:
                    v = self.velocity[key] = np.zeros_like(w)
                v *= momentum
                v -= lr * g
                if self.nesterov:
                    w += momentum * v - lr * g
                else:
                    w += v
            else:
                w -= w.dtype.type(lr) * g

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.velocity.items()}

    def load_state(self, velocity: dict[str, np.ndarray]) -> None:
        self.velocity = {k: np.array(v) for k, v in velocity.items()}
