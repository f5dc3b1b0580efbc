"""What a model file's training state (its ``state/meta`` JSON) may hold, as a table.

Every entry of META must be present and pass its check; OPTIONAL entries are checked when
present. A new training-state setting adds one line here. The limits are those of the options
that set them (``train --lr`` at most 100, ``--epochs`` at most MAX_EPOCHS...), so a resumed
file can never ask for more than the options can.
"""
from __future__ import annotations

import math

import numpy as np

from convscope.engine.data.augment import parse_kinds
from convscope.engine.data.idx import MAX_IMAGES
from convscope.engine.schedules import LR_SCHEDULES

MAX_EPOCHS = 10_000  # epochs one run may ask for (train --epochs, a resumed schedule)
MAX_SMOOTHING = 0.5  # label smoothing beyond this would make the label no longer the target
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_COUNT = 2**53  # steps, epochs and samples seen: any count a float holds exactly


def number(lo, hi, whole=False, lo_open=False, hi_open=False):
    """A check: a JSON number (whole if asked) in [lo, hi], either end open if asked."""
    def check(v) -> bool:
        if isinstance(v, bool) or not isinstance(v, int if whole else (int, float)):
            return False
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    return check


def rng_state(v) -> bool:
    """A NumPy bit generator's state that the generator itself accepts."""
    if not isinstance(v, dict) or v.get("bit_generator") not in BIT_GENERATORS:
        return False
    try:
        getattr(np.random, v["bit_generator"])().state = v
    except (ValueError, TypeError, KeyError, OverflowError):
        return False
    return True


def schedule(v) -> bool:
    """{"name": "cosine", "base_lr": 0.05, "start_epoch": 0, "epochs": 2} and optionally
    "plain_epochs": 0 to epochs (engine/schedules.py)."""
    return (isinstance(v, dict) and v.get("name") in LR_SCHEDULES
            and set(v) <= {"name", "base_lr", "start_epoch", "epochs", "plain_epochs"}
            and number(0, _COUNT, whole=True)(v.get("start_epoch"))
            and number(1, MAX_EPOCHS, whole=True)(v.get("epochs"))
            and number(0, 100, lo_open=True)(v.get("base_lr"))
            and number(0, v["epochs"], whole=True)(v.get("plain_epochs", 0)))


def augment_kinds(v) -> bool:
    """A list of engine/data/augment.py kinds, or a boolean (files from before the kinds)."""
    if isinstance(v, bool):
        return True
    if not isinstance(v, list) or len(v) > 10 or not all(isinstance(k, str) for k in v):
        return False
    try:
        parse_kinds(v)
    except ValueError:
        return False
    return True


META = {  # entry -> check
    "step": number(0, _COUNT, whole=True),
    "epoch": number(0, _COUNT, whole=True),
    "cursor": number(0, MAX_IMAGES, whole=True),
    "samples_seen": number(0, _COUNT, whole=True),
    "lr": number(0, 100, lo_open=True),
    "batch_size": number(1, MAX_IMAGES, whole=True),
    "momentum": number(0, 1, hi_open=True),
    "seed": number(0, 2**64 - 1, whole=True),
    "epoch_loss_sum": number(0, math.inf, hi_open=True),
    "epoch_correct": number(0, MAX_IMAGES, whole=True),
    "epoch_seen": number(0, MAX_IMAGES, whole=True),
    "rng": rng_state,
}
OPTIONAL = {  # entry -> check, when present
    "lr_schedule": schedule,
    "nesterov": lambda v: isinstance(v, bool),
    "weight_decay": number(0, 1, hi_open=True),
    "augment": augment_kinds,
    "label_smoothing": number(0, MAX_SMOOTHING),
}
NAMES = {"rng": "random generator state", "lr_schedule": "learning-rate schedule",
         "weight_decay": "weight decay", "augment": "augmentation",
         "label_smoothing": "label smoothing"}


def meta_problem(meta) -> str | None:
    """What is wrong with a state/meta dict, in words, or None."""
    if not isinstance(meta, dict):
        return "the training state is not a JSON object"
    missing = [k for k in META if k not in meta]
    if missing:
        return f"the training state lacks {', '.join(missing)}"
    for key, check in (*META.items(), *OPTIONAL.items()):
        if key in meta and not check(meta[key]):
            return f"the training state has a bad {NAMES.get(key, key)}"
    return None
