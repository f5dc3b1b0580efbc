"""The named networks: a preset is a function from a few choices (filters, pooling, ReLU) to
a config, the plain data ``Model(config)`` builds.

    seed    the design notes' network: conv 3x3x8 -> max-pool 2 -> dense 10
    deep    two conv 3x3 layers (8 and 16 filters), each with ReLU and pooling
    lenet   two conv 5x5 layers (16 and 32 filters), a hidden dense layer of 128
    best    lenet's layers, trained with the most accurate recipe (engine/recipes.py)
"""
from __future__ import annotations

from convscope.engine.files.limits import DIGIT_NAMES, MAX_FILTERS, names_problem


def _seed(filters=8, pool="max", relu=False, classes=10):
    layers = [{"type": "conv", "filters": filters, "k": 3, "stride": 1, "pad": 0,
               "bias": False, "init": "notes"}]
    if relu:
        layers.append({"type": "relu"})
    layers += [{"type": "pool", "mode": pool, "size": 2, "stride": 2},
               {"type": "flatten"},
               {"type": "dense", "units": classes, "init": "notes"}]
    return layers


def _deep(filters=8, pool="max", relu=True, classes=10):
    act = [{"type": "relu"}] if relu else []
    return ([{"type": "conv", "filters": filters, "k": 3, "pad": 1, "bias": True, "init": "he"}]
            + act + [{"type": "pool", "mode": pool, "size": 2, "stride": 2},
                     {"type": "conv", "filters": 2 * filters, "k": 3, "pad": 1, "bias": True,
                      "init": "he"}]
            + act + [{"type": "pool", "mode": pool, "size": 2, "stride": 2},
                     {"type": "flatten"},
                     {"type": "dense", "units": classes, "init": "he"}])


def _lenet(filters=16, pool="max", relu=True, classes=10):
    act = [{"type": "relu"}] if relu else []
    return ([{"type": "conv", "filters": filters, "k": 5, "pad": 2, "bias": True, "init": "he"}]
            + act + [{"type": "pool", "mode": pool, "size": 2, "stride": 2},
                     {"type": "conv", "filters": 2 * filters, "k": 5, "pad": 2, "bias": True,
                      "init": "he"}]
            + act + [{"type": "pool", "mode": pool, "size": 2, "stride": 2},
                     {"type": "flatten"},
                     {"type": "dense", "units": 128, "init": "he"}]
            + act + [{"type": "dense", "units": classes, "init": "he"}])


# name -> (builder, default filters, default relu, description)
PRESETS = {
    "seed": (_seed, 8, False, "the design notes' network: conv 3x3x8, max-pool 2, dense 10"),
    "deep": (_deep, 8, True, "conv 8 -> ReLU -> pool -> conv 16 -> ReLU -> pool -> dense 10"),
    "lenet": (_lenet, 16, True,
              "conv5 16 -> ReLU -> pool -> conv5 32 -> ReLU -> pool -> dense 128 -> dense 10"),
    # lenet's layers, trained longer on distorted digits (engine/recipes.py): the most accurate
    "best": (_lenet, 16, True, "lenet's layers with the most accurate recipe: conv5 16 -> "
             "ReLU -> pool -> conv5 32 -> ReLU -> pool -> dense 128 -> dense 10"),
}


def build_config(preset="seed", filters=None, pool="max", relu=None, class_names=None) -> dict:
    """The declarative config of a preset, with optional overrides. ``class_names``: the
    dataset's classes (default the 10 digits); the last dense layer has one unit per class."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    builder, default_filters, default_relu, _ = PRESETS[preset]
    filters = default_filters if filters is None else int(filters)
    if not 1 <= filters <= MAX_FILTERS:
        raise ValueError(f"filters must be between 1 and {MAX_FILTERS}, got {filters}")
    relu = default_relu if relu is None else bool(relu)
    names = list(DIGIT_NAMES if class_names is None else class_names)
    problem = names_problem(names)
    if problem:
        raise ValueError(problem)
    return {"preset": preset, "filters": filters, "pool": pool, "relu": relu,
            "classes": len(names), "class_names": names,
            "layers": builder(filters, pool, relu, len(names))}
