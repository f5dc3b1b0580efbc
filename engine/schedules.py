"""Schedules: how lr moves over a run (constant, cosine, onecycle), and when its last epochs
train on the digits as they are.

The Trainer asks ``schedule_lr`` for the rate before every step; the optimizer just uses it.
It asks ``plain_now`` whether to distort the next batch: a recipe may end with a few plain
epochs, where the network settles, at a low learning rate, on undistorted digits like the
ones it is tested on.
"""
from __future__ import annotations

import math

# How the learning rate changes from epoch to epoch. A schedule is plain data, kept with the
# training state: {"name": "cosine", "base_lr": 0.05, "start_epoch": 0, "epochs": 2}, with
# "plain_epochs": 2 when its last 2 epochs are not augmented.
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


def make_schedule(name: str, base_lr: float, epochs: int, start_epoch: int = 0,
                  plain_epochs: int = 0) -> dict:
    """A schedule starting at ``start_epoch`` and running ``epochs`` epochs from ``base_lr``,
    the last ``plain_epochs`` of them without augmentation (a recipe's lr, lr_schedule, epochs
    and plain_epochs; the Trainer takes it as ``schedule=``)."""
    if name not in LR_SCHEDULES:
        raise ValueError(f"no learning-rate schedule {name!r} (choose from "
                         f"{', '.join(LR_SCHEDULES)})")
    if not 0 <= int(plain_epochs) <= int(epochs):
        raise ValueError(f"plain epochs must be between 0 and the {int(epochs)} epochs, got "
                         f"{int(plain_epochs)}")
    schedule = {"name": name, "base_lr": float(base_lr), "start_epoch": int(start_epoch),
                "epochs": int(epochs)}
    if plain_epochs:
        schedule["plain_epochs"] = int(plain_epochs)
    return schedule


def schedule_end(schedule: dict) -> int:
    """The epoch count at which the schedule's epochs are done."""
    return int(schedule["start_epoch"]) + int(schedule["epochs"])


def plain_now(schedule: dict | None, epoch: int) -> bool:
    """True during the schedule's last ``plain_epochs`` epochs (``epoch`` 0-based, as
    ``Trainer.epoch`` counts them): the training digits go in undistorted."""
    plain = 0 if schedule is None else int(schedule.get("plain_epochs", 0))
    return plain > 0 and schedule_end(schedule) - plain <= epoch < schedule_end(schedule)


def final_lr(schedule: dict) -> float:
    """The learning rate of the schedule's last step (where training may go on from)."""
    just_before = 1e-6  # of an epoch: onecycle's last value, cosine's last epoch
    return schedule_lr(schedule, schedule_end(schedule) - just_before)
