"""Sizes a network config may ask for, checked before anything is built.

The presets stay well inside them (the largest, lenet with 64 filters, has about 1.0 million
weights); a model file's config is checked against them before anything is built, so a crafted
file cannot make the app allocate gigabytes.
"""
from __future__ import annotations

import math

from convscope.engine.net.layers import out_size
from convscope.engine.net.names import layer_names

INPUT_SHAPE = (28, 28)  # one grey digit; a config's first layer reads (28, 28, 1)
MAX_FILTERS = 64  # filters of a preset's first conv layer (--filters, the GUI's spin box)
MAX_CONV_FILTERS = 2 * MAX_FILTERS  # any conv layer: deep and lenet double the first one
MAX_UNITS = 1024  # outputs of a dense layer (lenet's hidden layer has 128)
MAX_KERNEL = 7  # conv and pool windows and strides (the presets use 2, 3 and 5)
MAX_LAYERS = 32  # entries of a config's layer list (lenet has 10)
MAX_WEIGHTS = 4_000_000  # weights of the whole network (16 MB in float32)
# What one image costs, not only the weights: lenet with 64 filters needs 42 million
# multiply-adds and 0.53 million activation and work values (padded inputs, patches, outputs).
MAX_MULTIPLY_ADDS = 50_000_000  # per image, forward pass
MAX_VALUES = 800_000  # activations and work buffers per image (3.2 MB in float32)
MAX_CLASSES = 64  # outputs of the network, classes of a dataset (EMNIST byclass has 62)
MAX_CLASS_NAME = 40  # characters of one class name
DIGIT_NAMES = [str(d) for d in range(10)]  # the classes of a config or file that names none


def _size(spec: dict, key: str, default, lo: int, hi: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{spec.get('type')} {key} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{spec.get('type')} {key} must be between {lo} and {hi}, got {value}")
    return value


def layer_shapes(spec: dict, shape: tuple) -> tuple[tuple, dict]:
    """(output shape, {"W": shape, "b": shape}) of one layer spec on an input ``shape``."""
    kind = spec.get("type")
    if kind in ("conv", "pool") and len(shape) != 3:
        raise ValueError(f"a {kind} layer needs an (H, W, C) input, not {shape}")
    if kind == "conv":
        c_out = _size(spec, "filters", None, 1, MAX_CONV_FILTERS)
        k = _size(spec, "k", 3, 1, MAX_KERNEL)
        stride = _size(spec, "stride", 1, 1, MAX_KERNEL)
        pad = _size(spec, "pad", 0, 0, k - 1)
        weights = {"W": (k, k, shape[2], c_out)}
        if spec.get("bias", False):
            weights["b"] = (c_out,)
        out = (out_size(shape[0], k, stride, pad), out_size(shape[1], k, stride, pad), c_out)
        return out, weights
    if kind == "pool":
        size = _size(spec, "size", 2, 1, MAX_KERNEL)
        stride = _size(spec, "stride", 2, 1, MAX_KERNEL)
        return (out_size(shape[0], size, stride), out_size(shape[1], size, stride),
                shape[2]), {}
    if kind == "relu":
        return shape, {}
    if kind == "flatten":
        return (math.prod(shape),), {}
    if kind == "dense":
        if len(shape) != 1:
            raise ValueError(f"a dense layer needs a flat input, not {shape}")
        units = _size(spec, "units", None, 1, MAX_UNITS)
        return (units,), {"W": (shape[0], units), "b": (units,)}
    raise ValueError(f"unknown layer type {kind!r}")


def config_shapes(config: dict) -> dict[str, tuple]:
    """{"conv1.W": (3, 3, 1, 8), ...}: the weight shapes ``Model(config)`` would build, worked
    out without building anything. ValueError when a size is outside the limits above."""
    layers = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise ValueError(f"the config needs a list of 1 to {MAX_LAYERS} layers")
    for spec in layers:
        if not isinstance(spec, dict):
            raise ValueError(f"a layer must be a JSON object, got {spec!r}")
    shape: tuple = (*INPUT_SHAPE, 1)
    shapes: dict[str, tuple] = {}
    multiply_adds = values = 0  # per image
    for spec, name in zip(layers, layer_names([str(s.get("type")) for s in layers]), strict=True):
        x_shape = shape
        shape, weights = layer_shapes(spec, shape)
        if "W" in weights:  # conv (k, k, C_in, C_out): each output value costs k*k*C_in
            w = weights["W"]
            multiply_adds += math.prod(shape) * math.prod(w[:-1])
            if len(w) == 4:  # the zero-padded input and the patches (Ho*Wo, k*k*C_in)
                pad = 2 * spec.get("pad", 0)
                values += ((x_shape[0] + pad) * (x_shape[1] + pad) * x_shape[2]
                           + shape[0] * shape[1] * math.prod(w[:-1]))
        values += math.prod(shape)
        if min(shape) < 1:
            raise ValueError(f"layer {name} leaves an empty output {shape}")
        shapes.update({f"{name}.{k}": v for k, v in weights.items()})
    classes = config.get("classes", 10)
    if not isinstance(classes, int) or isinstance(classes, bool) or not \
            2 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be a whole number from 2 to {MAX_CLASSES}, "
                         f"got {classes!r}")
    if shape != (classes,):
        raise ValueError(f"the network must end with {classes} outputs (one per class), "
                         f"not {shape}")
    if "class_names" in config:
        problem = names_problem(config["class_names"], classes)
        if problem:
            raise ValueError(problem)
    total = sum(math.prod(s) for s in shapes.values())
    if total > MAX_WEIGHTS:
        raise ValueError(f"{total:,} weights is more than the {MAX_WEIGHTS:,} allowed")
    if multiply_adds > MAX_MULTIPLY_ADDS:
        raise ValueError(f"{multiply_adds:,} multiply-adds per image is more than the "
                         f"{MAX_MULTIPLY_ADDS:,} allowed")
    if values > MAX_VALUES:
        raise ValueError(f"{values:,} activation values per image is more than the "
                         f"{MAX_VALUES:,} allowed")
    return shapes


def macs_per_sample(config: dict) -> int:
    """Multiply-adds of one sample's forward pass through the conv and dense layers."""
    shape, total = (*INPUT_SHAPE, 1), 0
    for spec in config["layers"]:
        shape, weights = layer_shapes(spec, shape)
        w = math.prod(weights.get("W", (0,)))
        total += w * shape[0] * shape[1] if spec["type"] == "conv" else w
    return total


def names_problem(names, classes: int | None = None) -> str | None:
    """Why ``names`` is not a list of class names (2 to MAX_CLASSES distinct, short, printable
    and non-empty, ``classes`` of them if given), or None."""
    from convscope.engine.files.guard import clean_text
    if not isinstance(names, list) or not 2 <= len(names) <= MAX_CLASSES:
        return f"the class names must be a list of 2 to {MAX_CLASSES} names"
    if classes is not None and len(names) != classes:
        return f"{len(names)} class names for {classes} classes"
    for n in names:
        if not isinstance(n, str) or not n.strip() or clean_text(n, MAX_CLASS_NAME) != n:
            return (f"class name {clean_text(repr(n), 60)} is not short printable text "
                    f"(at most {MAX_CLASS_NAME} characters)")
    if len(set(names)) != len(names):
        return "the class names are not all different"
    return None


def class_names(config: dict) -> list[str]:
    """The class names of a config: its own, else the digits (configs from before classes)."""
    names = config.get("class_names")
    return list(names) if names is not None else list(DIGIT_NAMES)
