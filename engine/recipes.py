"""Each preset's whole training recipe, as plain data.

A recipe is everything ``convscope train --preset NAME`` runs when no other option is given:
the network's width (filters of its first conv layer), how long and how fast it learns, and
how its training digits are distorted. Any option given on the command line (or a control in
the app) overrides its entry. The accuracy is what the recipe reached on the official
10,000-digit MNIST test set, trained only on the 9,000 embedded digits (README, Networks).

    filters       filters of the first conv layer (deep, lenet and best double it in the next)
    epochs        passes over the training digits
    lr            learning rate (the peak of a onecycle schedule, the start of a cosine one)
    lr_schedule   constant, cosine or onecycle (engine/net/optim.py, schedule_lr)
    batch_size    digits per SGD step
    momentum      SGD momentum; nesterov: look-ahead momentum
    weight_decay  pull of every weight towards 0 at each step
    augment       kinds of engine/data/augment.py; () trains on the digits as they are
    plain_epochs  the last epochs train on the digits as they are: the network settles, at a
                  low learning rate, on undistorted digits like those it is tested on
    label_smoothing  the loss's target keeps this share spread over every class (0.1: the
                  label 0.91, each other digit 0.01), so the network is never pushed to
                  certainty on a digit; engine/net/layers.py, softmax_cross_entropy
"""
from __future__ import annotations

RECIPE_KEYS = ("filters", "epochs", "lr", "lr_schedule", "batch_size", "momentum", "nesterov",
               "weight_decay", "augment", "plain_epochs", "label_smoothing")

RECIPES = {
    # the design notes: one epoch of per-sample SGD
    "seed": {"filters": 8, "epochs": 1, "lr": 0.005, "lr_schedule": "constant",
             "batch_size": 1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
             "augment": (), "plain_epochs": 0, "label_smoothing": 0.0},
    "deep": {"filters": 16, "epochs": 12, "lr": 0.05, "lr_schedule": "cosine",
             "batch_size": 32, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0,
             "augment": ("shift",), "plain_epochs": 0, "label_smoothing": 0.0},
    "lenet": {"filters": 16, "epochs": 8, "lr": 0.05, "lr_schedule": "cosine",
              "batch_size": 32, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0,
              "augment": ("shift",), "plain_epochs": 0, "label_smoothing": 0.0},
    "best": {"filters": 16, "epochs": 24, "lr": 0.05, "lr_schedule": "onecycle",
             "batch_size": 32, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
             "augment": ("shift", "rotate", "scale", "elastic"), "plain_epochs": 2,
             "label_smoothing": 0.1},
}


def recipe(preset: str) -> dict:
    """A copy of ``preset``'s recipe (KeyError names an unknown preset)."""
    if preset not in RECIPES:
        raise KeyError(f"no recipe for preset {preset!r} (choose from {', '.join(RECIPES)})")
    r = dict(RECIPES[preset])
    r["augment"] = tuple(r["augment"])
    return r
