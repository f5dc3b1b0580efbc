"""A network built from a small declarative config, with presets.

A config is plain JSON-able data: ``{"preset": name, "layers": [ {"type": "conv", ...}, ... ]}``.
``Model.forward`` and ``Model.backward`` can fill a ``trace`` dict with copies of every
intermediate and every gradient the design notes name; without a trace they cost nothing extra.
"""
from __future__ import annotations

import copy

import numpy as np

from convscope.engine import fast
from convscope.engine.net.layers import (
    DTYPE,
    Conv2D,
    Dense,
    Flatten,
    Pool2D,
    ReLU,
    _out_size,
    softmax,
    softmax_cross_entropy,
)

INPUT_SHAPE = (28, 28)
# Sizes a config may ask for. The presets stay well inside them (the largest, lenet with 64
# filters, has about 1.0 million weights); a model file's config is checked against them before
# anything is built, so a crafted file cannot make the app allocate gigabytes.
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


def _seed(filters=8, pool="max", relu=False):
    layers = [{"type": "conv", "filters": filters, "k": 3, "stride": 1, "pad": 0,
               "bias": False, "init": "notes"}]
    if relu:
        layers.append({"type": "relu"})
    layers += [{"type": "pool", "mode": pool, "size": 2, "stride": 2},
               {"type": "flatten"},
               {"type": "dense", "units": 10, "init": "notes"}]
    return layers


def _deep(filters=8, pool="max", relu=True):
    act = [{"type": "relu"}] if relu else []
    return ([{"type": "conv", "filters": filters, "k": 3, "pad": 1, "bias": True, "init": "he"}]
            + act + [{"type": "pool", "mode": pool, "size": 2, "stride": 2},
                     {"type": "conv", "filters": 2 * filters, "k": 3, "pad": 1, "bias": True,
                      "init": "he"}]
            + act + [{"type": "pool", "mode": pool, "size": 2, "stride": 2},
                     {"type": "flatten"},
                     {"type": "dense", "units": 10, "init": "he"}])


def _lenet(filters=16, pool="max", relu=True):
    act = [{"type": "relu"}] if relu else []
    return ([{"type": "conv", "filters": filters, "k": 5, "pad": 2, "bias": True, "init": "he"}]
            + act + [{"type": "pool", "mode": pool, "size": 2, "stride": 2},
                     {"type": "conv", "filters": 2 * filters, "k": 5, "pad": 2, "bias": True,
                      "init": "he"}]
            + act + [{"type": "pool", "mode": pool, "size": 2, "stride": 2},
                     {"type": "flatten"},
                     {"type": "dense", "units": 128, "init": "he"}]
            + act + [{"type": "dense", "units": 10, "init": "he"}])


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


def build_config(preset="seed", filters=None, pool="max", relu=None) -> dict:
    """The declarative config of a preset, with optional overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    builder, default_filters, default_relu, _ = PRESETS[preset]
    filters = default_filters if filters is None else int(filters)
    if not 1 <= filters <= MAX_FILTERS:
        raise ValueError(f"filters must be between 1 and {MAX_FILTERS}, got {filters}")
    relu = default_relu if relu is None else bool(relu)
    return {"preset": preset, "filters": filters, "pool": pool, "relu": relu,
            "layers": builder(filters, pool, relu)}


def _size(spec: dict, key: str, default, lo: int, hi: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{spec.get('type')} {key} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{spec.get('type')} {key} must be between {lo} and {hi}, got {value}")
    return value


def _layer_shapes(spec: dict, shape: tuple) -> tuple[tuple, dict]:
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
        out = (_out_size(shape[0], k, stride, pad), _out_size(shape[1], k, stride, pad), c_out)
        return out, weights
    if kind == "pool":
        size = _size(spec, "size", 2, 1, MAX_KERNEL)
        stride = _size(spec, "stride", 2, 1, MAX_KERNEL)
        return (_out_size(shape[0], size, stride), _out_size(shape[1], size, stride),
                shape[2]), {}
    if kind == "relu":
        return shape, {}
    if kind == "flatten":
        return (int(np.prod(shape)),), {}
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
    shape: tuple = (*INPUT_SHAPE, 1)
    shapes: dict[str, tuple] = {}
    counts: dict[str, int] = {}
    multiply_adds = values = 0  # per image
    for spec in layers:
        if not isinstance(spec, dict):
            raise ValueError(f"a layer must be a JSON object, got {spec!r}")
        x_shape = shape
        shape, weights = _layer_shapes(spec, shape)
        if "W" in weights:  # conv (k, k, C_in, C_out): each output value costs k*k*C_in
            w = weights["W"]
            multiply_adds += int(np.prod(shape)) * int(np.prod(w[:-1]))
            if len(w) == 4:  # the zero-padded input and the patches (Ho*Wo, k*k*C_in)
                pad = 2 * spec.get("pad", 0)
                values += ((x_shape[0] + pad) * (x_shape[1] + pad) * x_shape[2]
                           + shape[0] * shape[1] * int(np.prod(w[:-1])))
        values += int(np.prod(shape))
        kind = spec["type"]
        counts[kind] = counts.get(kind, 0) + 1
        name = f"{kind}{counts[kind]}" if kind != "flatten" else "flatten"
        if min(shape) < 1:
            raise ValueError(f"layer {name} leaves an empty output {shape}")
        shapes.update({f"{name}.{k}": v for k, v in weights.items()})
    if shape != (10,):
        raise ValueError(f"the network must end with 10 outputs, not {shape}")
    total = sum(int(np.prod(s)) for s in shapes.values())
    if total > MAX_WEIGHTS:
        raise ValueError(f"{total:,} weights is more than the {MAX_WEIGHTS:,} allowed")
    if multiply_adds > MAX_MULTIPLY_ADDS:
        raise ValueError(f"{multiply_adds:,} multiply-adds per image is more than the "
                         f"{MAX_MULTIPLY_ADDS:,} allowed")
    if values > MAX_VALUES:
        raise ValueError(f"{values:,} activation values per image is more than the "
                         f"{MAX_VALUES:,} allowed")
    return shapes


def prepare_input(images: np.ndarray) -> np.ndarray:
    """uint8 pixels (N, 28, 28) -> float32 network input x / 255 - 0.5, as in the notes."""
    return (np.asarray(images, dtype=DTYPE) * DTYPE(1 / 255)) - DTYPE(0.5)


class Model:
    """A stack of layers from a config. Seeded: the same config and seed give the same weights."""

    def __init__(self, config: dict, seed: int = 0, dtype=DTYPE):
        self.config = copy.deepcopy(config)
        self.seed = int(seed)
        self.dtype = dtype
        rng = np.random.default_rng(self.seed)
        self.layers = []
        shape: tuple = (*INPUT_SHAPE, 1)
        counts: dict[str, int] = {}
        for spec in self.config["layers"]:
            kind = spec["type"]
            counts[kind] = counts.get(kind, 0) + 1
            name = f"{kind}{counts[kind]}" if kind != "flatten" else "flatten"
            if kind == "conv":
                layer = Conv2D(shape[2], spec["filters"], spec.get("k", 3), spec.get("stride", 1),
                               spec.get("pad", 0), spec.get("bias", False), rng,
                               spec.get("init", "notes"), name, dtype,
                               need_dx=bool(self.layers))
            elif kind == "pool":
                layer = Pool2D(spec.get("mode", "max"), spec.get("size", 2),
                               spec.get("stride", 2), name)
            elif kind == "relu":
                layer = ReLU(name)
            elif kind == "flatten":
                layer = Flatten(name)
            elif kind == "dense":
                layer = Dense(shape[0], spec["units"], rng, spec.get("init", "notes"), name,
                              dtype)
            else:
                raise ValueError(f"unknown layer type {kind!r}")
            shape = layer.out_shape(shape)
            if min(shape) < 1:
                raise ValueError(f"layer {name} leaves an empty output {shape}")
            self.layers.append(layer)
        if shape != (10,):
            raise ValueError(f"the network must end with 10 outputs, not {shape}")
        # the same arithmetic in fewer NumPy calls, for passes without a trace (engine/fast/)
        self.fused = fast.plan(self)

    # ---- parameters -------------------------------------------------------------------
    def params(self) -> dict[str, np.ndarray]:
        """{"conv1.W": (3,3,1,8), "dense1.W": (1352,10), ...}: the live arrays, not copies."""
        return {f"{layer.name}.{k}": v for layer in self.layers for k, v in layer.params.items()}

    def grads(self) -> dict[str, np.ndarray]:
        return {f"{layer.name}.{k}": v for layer in self.layers for k, v in layer.grads.items()}

    def set_params(self, values: dict[str, np.ndarray]) -> None:
        """Copy weights in place (shapes must match)."""
        own = self.params()
        if set(values) != set(own):
            raise ValueError(f"weights {sorted(values)} do not match the model's {sorted(own)}")
        for key, arr in own.items():
            if values[key].shape != arr.shape:
                raise ValueError(f"{key} has shape {values[key].shape}, expected {arr.shape}")
            arr[...] = values[key]

    def layer(self, name: str):
        return next(layer for layer in self.layers if layer.name == name)

    def copy(self, dtype=None) -> Model:
        other = Model(self.config, self.seed, dtype or self.dtype)
        for key, arr in other.params().items():
            arr[...] = self.params()[key]
        return other

    # ---- passes -----------------------------------------------------------------------
    def forward(self, x: np.ndarray, trace: dict | None = None) -> np.ndarray:
        """x (N, 28, 28) float input -> logits t (N, 10). Fills ``trace`` with copies if given."""
        out = x
        if trace is not None:
            trace["input"] = np.array(x)
        for layer in self.layers:
            out = layer.forward(out)
            if trace is not None:
                trace[layer.name] = np.array(out)
                if layer.kind == "pool" and layer.mode != "avg":
                    trace[layer.name + ".mask"] = layer.mask()
        if trace is not None:
            trace["logits"] = np.array(out)
            trace["probs"] = softmax(out)
        return out

    def backward(self, dt: np.ndarray, trace: dict | None = None) -> None:
        """dL/dt (N, 10) -> fills every layer's grads. ``trace`` gets each layer's dL/dinput
        as ``<name>.dx`` and its weight gradients as ``<name>.dW`` / ``<name>.db``."""
        d = dt
        for layer in reversed(self.layers):
            d = layer.backward(d)
            if trace is not None:
                for k, g in layer.grads.items():
                    trace[f"{layer.name}.d{k}"] = np.array(g)
                if d is not None:
                    trace[f"{layer.name}.dx"] = np.array(d)

    def loss_and_grads(self, x, labels, trace: dict | None = None):
        """One forward and backward pass. Returns (per-sample losses (N,), probs (N, 10))."""
        if trace is None and self.fused is not None:
            return self.fused.loss_and_grads(self.fused.patches(x), labels)
        t = self.forward(x, trace)
        losses, probs, dt = softmax_cross_entropy(t, labels)
        if trace is not None:
            n = len(labels)
            p_label = probs[np.arange(n), labels]
            d_out = np.zeros_like(probs)
            # dL/dout: only the label entry (a probability that underflowed to 0 shows as
            # the largest float, not as -inf)
            d_out[np.arange(n), labels] = -1.0 / np.maximum(p_label, np.finfo(p_label.dtype).tiny)
            trace["labels"] = np.array(labels)
            trace["loss"] = np.array(losses)
            trace["dL_dout"] = d_out
            # dout[label]/dt: softmax Jacobian row of the label, as in the notes
            trace["dout_dt"] = -probs * p_label[:, None]
            trace["dout_dt"][np.arange(n), labels] = p_label * (1 - p_label)
            trace["dL_dt"] = dt * n  # per sample: out - onehot(label)
        self.backward(dt, trace)
        return losses, probs

    def predict_proba(self, x: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Probabilities (N, 10) in chunks (a few hundred images at a time is fastest)."""
        if self.fused is not None and hasattr(self.fused, "probs"):
            return self.fused.probs(x)
        out = np.empty((len(x), 10), dtype=self.dtype)
        for i in range(0, len(x), chunk):
            out[i:i + chunk] = softmax(self.forward(x[i:i + chunk]))
        return out
