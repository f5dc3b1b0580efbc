"""A Trainer's whole training state as plain arrays and numbers, and back: what a model file
and the timeline keep to resume a run exactly (same losses, bit for bit)."""
from __future__ import annotations

import copy

import numpy as np


def training_state(trainer) -> dict:
    """Everything needed to resume exactly: weights, optimizer, position, rng (copies)."""
    meta = {
        "step": trainer.step_count, "epoch": trainer.epoch, "cursor": trainer.cursor,
        "samples_seen": trainer.samples_seen, "lr": trainer.lr,
        "batch_size": trainer.batch_size, "momentum": trainer.momentum, "seed": trainer.seed,
        "epoch_loss_sum": trainer.epoch_loss_sum, "epoch_correct": trainer.epoch_correct,
        "epoch_seen": trainer.epoch_seen,
        "rng": copy.deepcopy(trainer.rng.bit_generator.state),
        "nesterov": trainer.optimizer.nesterov,
        "weight_decay": trainer.optimizer.weight_decay, "augment": list(trainer.augment),
        "label_smoothing": trainer.label_smoothing,
    }
    if trainer.schedule is not None:
        meta["lr_schedule"] = dict(trainer.schedule)
    return {"params": {k: v.copy() for k, v in trainer.model.params().items()},
            "velocity": trainer.optimizer.state(), "order": trainer.order.copy(), "meta": meta}


def restore_state(trainer, state: dict, hyperparameters: bool = True) -> None:
    """Put ``trainer`` where ``state`` (from ``training_state``) was; with
    ``hyperparameters``, also its learning rate, schedule, momentum and batch size."""
    meta = state["meta"]
    if len(state["order"]) != len(trainer.x_train):
        raise ValueError("the saved position does not fit this training set")
    trainer.model.set_params(state["params"])
    trainer.optimizer.load_state(state["velocity"])
    trainer.order = np.array(state["order"])
    trainer.step_count, trainer.epoch = int(meta["step"]), int(meta["epoch"])
    trainer.cursor, trainer.samples_seen = int(meta["cursor"]), int(meta["samples_seen"])
    trainer.epoch_loss_sum = float(meta["epoch_loss_sum"])
    trainer.epoch_correct, trainer.epoch_seen = int(meta["epoch_correct"]), int(meta["epoch_seen"])
    trainer.rng.bit_generator.state = copy.deepcopy(meta["rng"])
    if hyperparameters:
        trainer.lr, trainer.momentum = meta["lr"], meta["momentum"]
        trainer.batch_size = int(meta["batch_size"])
        opt = trainer.optimizer
        opt.nesterov = bool(meta.get("nesterov", opt.nesterov))
        opt.weight_decay = float(meta.get("weight_decay", opt.weight_decay))
        trainer.augment = meta.get("augment", trainer.augment)
        trainer.label_smoothing = float(meta.get("label_smoothing", 0.0))  # older: none
        schedule = meta.get("lr_schedule", trainer.schedule)
        trainer.schedule = None if schedule is None else dict(schedule)
