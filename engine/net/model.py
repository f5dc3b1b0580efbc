"""A network built from a small declarative config (the named ones: ``engine/presets.py``).

A config is plain JSON-able data: ``{"preset": name, "layers": [ {"type": "conv", ...}, ... ]}``.
``Model.forward`` and ``Model.backward`` can fill a ``trace`` dict with copies of every
intermediate and every gradient the design notes name; without a trace they cost nothing extra.
``Model.loss_and_grads`` is the training pass: it picks how to run it (the layers one by one,
a fast pass from ``convscope.engine.fast``, chunks of a large batch); the result is the same.
"""
from __future__ import annotations

import copy

import numpy as np

from convscope.engine.fast import Prepared, plan
from convscope.engine.fast.layers import KINDS as FAST_KINDS
from convscope.engine.files import limits
from convscope.engine.net import names
from convscope.engine.net.layers import DTYPE, KINDS, softmax, softmax_cross_entropy
from convscope.engine.presets import PRESETS, build_config  # noqa: F401 (the named configs)

# A batch larger than this many multiply-adds runs in chunks: memory stays bounded and the
# caller's ``between()`` is asked between chunks (~0.1-0.4 s each on 2 cores).
CHUNK_MACS = 1e8


def prepare_input(images: np.ndarray) -> np.ndarray:
    """uint8 pixels (N, 28, 28) -> float32 network input x / 255 - 0.5, as in the notes."""
    return (np.asarray(images, dtype=DTYPE) * DTYPE(1 / 255)) - DTYPE(0.5)


def layer_info(config: dict) -> list[tuple[str, str, tuple]]:
    """[(name, kind, output shape)] of a config's layers: ("conv1", "conv", (26, 26, 8)), ..."""
    specs, shape, info = config["layers"], (*limits.INPUT_SHAPE, 1), []
    for spec, name in zip(specs, names.layer_names([s["type"] for s in specs]), strict=True):
        shape, _ = limits.layer_shapes(spec, shape)
        info.append((name, spec["type"], shape))
    return info


class Model:
    """A stack of layers from a config. Seeded: the same config and seed give the same weights.
    ``fast=False`` runs every pass through the plain layers of ``net/layers.py``."""

    def __init__(self, config: dict, seed: int = 0, dtype=DTYPE, fast: bool = True):
        self.config = copy.deepcopy(config)
        self.seed, self.dtype, self.fast = int(seed), dtype, bool(fast)
        limits.config_shapes(self.config)  # ValueError unless every size is within the limits
        self.class_names = limits.class_names(self.config)  # one output per class
        self.classes = len(self.class_names)
        rng = np.random.default_rng(self.seed)
        kinds = FAST_KINDS if self.fast else KINDS  # the same maths, faster or plainer
        self.layers, shape = [], (*limits.INPUT_SHAPE, 1)
        for name, kind, out in layer_info(self.config):
            spec = self.config["layers"][len(self.layers)]
            self.layers.append(kinds[kind].from_spec(spec, shape, rng, dtype, name))
            shape = out
        self.layers[0].need_dx = False  # nothing reads dL/d(input image) in training
        self.chunk = max(1, int(CHUNK_MACS // max(1, limits.macs_per_sample(self.config))))
        # the same arithmetic in fewer NumPy calls for passes without a trace, or None
        self.fast_pass = plan(self) if self.fast else None
        # images per predict_proba call in evaluate (a fast pass bounds its own memory)
        self.predict_chunk = 256 if hasattr(self.fast_pass, "probs") else min(256, self.chunk)
        self._ones = None
        self._flat_grads = False  # True while the fast pass's flat gradient is the latest
        self._weights = [(f"{layer.name}.{k}", layer, k)
                         for layer in self.layers for k in layer.params]

    def layer_info(self) -> list[tuple[str, str, tuple]]:
        return layer_info(self.config)

    # ---- parameters -------------------------------------------------------------------
    def params(self) -> dict[str, np.ndarray]:
        """{"conv1.W": (3,3,1,8), "dense1.W": (1352,10), ...}: the live arrays, not copies."""
        return {key: layer.params[k] for key, layer, k in self._weights}

    def grads(self) -> dict[str, np.ndarray]:
        return {key: layer.grads[k] for key, layer, k in self._weights if k in layer.grads}

    def weights(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """[(key, weight, gradient)] after a pass, e.g. ("dense1.W", W, dW)."""
        return [(key, layer.params[k], layer.grads[k]) for key, layer, k in self._weights]

    def flat_pass(self):
        """The fast pass whose flat arrays (``flat_w``, ``flat_g``) hold every weight and the
        last pass's gradients (one update for the optimizer), or None."""
        return self.fast_pass if self._flat_grads else None

    def grad_total(self) -> float:
        """Sum of every gradient entry: finite exactly when every entry is (a sum that
        overflows is divergence too)."""
        flat = self.flat_pass()
        if flat is not None:  # a product with ones: one BLAS call
            if self._ones is None or len(self._ones) != len(flat.flat_g):
                self._ones = np.ones_like(flat.flat_g)
            return float(np.dot(flat.flat_g, self._ones))
        return sum(float(np.add.reduce(g, axis=None)) for _, _, g in self.weights())

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

    def copy(self, dtype=None, fast=None) -> Model:
        other = Model(self.config, self.seed, dtype or self.dtype,
                      self.fast if fast is None else fast)
        for key, arr in other.params().items():
            arr[...] = self.params()[key]
        return other

    # ---- passes -----------------------------------------------------------------------
    def forward(self, x: np.ndarray, trace: dict | None = None) -> np.ndarray:
        """x (N, 28, 28) float input -> logits t (N, 10). Fills ``trace`` with copies if given."""
        out = x
        if trace is not None:
            trace[names.INPUT] = np.array(x)
        for layer in self.layers:
            out = layer.forward(out)
            if trace is not None:
                trace[layer.name] = np.array(out)
                if layer.kind == "pool" and layer.mode != "avg":
                    trace[names.mask_key(layer.name)] = layer.mask()
        if trace is not None:
            trace[names.LOGITS] = np.array(out)
            trace[names.PROBS] = softmax(out)
        return out

    def backward(self, dt: np.ndarray, trace: dict | None = None) -> None:
        """dL/dt (N, 10) -> fills every layer's grads. ``trace`` gets each layer's dL/dinput
        as ``<name>.dx`` and its weight gradients as ``<name>.dW`` / ``<name>.db``."""
        self._flat_grads = False
        d = dt
        for layer in reversed(self.layers):
            d = layer.backward(d)
            if trace is not None:
                for k, g in layer.grads.items():
                    trace[names.grad_key(layer.name, k)] = np.array(g)
                if d is not None:
                    trace[names.dx_key(layer.name)] = np.array(d)

    def prepare(self, x: np.ndarray):
        """Float images (N, 28, 28) -> the batch as ``loss_and_grads`` reads it fastest: the
        images, or a fast pass's ``Prepared`` form (e.g. patches, made ahead by the Trainer)."""
        if self.fast_pass is None or len(x) > self.largest_batch():
            return x
        return Prepared(self.fast_pass.prepare(x))

    def loss_and_grads(self, x, labels, trace: dict | None = None, between=None,
                       smoothing: float = 0.0):
        """One forward and backward pass: fills every gradient (the mean over the batch).
        ``x``: float images (N, 28, 28) or ``prepare(x)``. A batch above ``self.chunk``
        samples runs in chunks, calling ``between()`` before each (it may raise to stop).
        ``smoothing``: label smoothing of the loss (softmax_cross_entropy). Returns
        (per-sample losses (N,), probs (N, 10))."""
        if trace is None and len(labels) > self.largest_batch():
            return self._chunked(x, labels, between, smoothing)
        if trace is None and self.fast_pass is not None:
            inputs = x.data if isinstance(x, Prepared) else self.fast_pass.prepare(x)
            losses, probs = self.fast_pass.loss_and_grads(inputs, labels, smoothing)
            self._flat_grads = hasattr(self.fast_pass, "flat_g")
            return losses, probs
        losses, probs, dt = softmax_cross_entropy(self.forward(x, trace), labels, smoothing)
        if trace is not None:
            trace.update(_loss_trace(losses, probs, dt, labels))
        self.backward(dt, trace)
        return losses, probs

    def largest_batch(self) -> int:
        """The largest batch run in one pass (a fast pass may take more than a chunk)."""
        return max(self.chunk, getattr(self.fast_pass, "max_batch", 0))

    def _chunked(self, x, labels, between, smoothing):
        """loss_and_grads of a large batch chunk by chunk: the same mean gradient."""
        n, parts, total = len(labels), [], {}
        for i in range(0, n, self.chunk):
            if between is not None:
                between()
            parts.append(self.loss_and_grads(x[i:i + self.chunk], labels[i:i + self.chunk],
                                             smoothing=smoothing))
            weight = len(parts[-1][0]) / n  # each chunk's gradient is the mean over its samples
            for k, g in self.grads().items():
                total[k] = total.get(k, 0) + g * g.dtype.type(weight)
        for k, g in self.grads().items():
            g[...] = total[k]
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))

    def predict_proba(self, x: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Probabilities (N, classes) in chunks (a few hundred images at a time is fastest)."""
        if hasattr(self.fast_pass, "probs"):
            return self.fast_pass.probs(x)
        out = np.empty((len(x), self.classes), dtype=self.dtype)
        for i in range(0, len(x), chunk):
            out[i:i + chunk] = softmax(self.forward(x[i:i + chunk]))
        return out


def _loss_trace(losses, probs, dt, labels) -> dict:
    """The notes' loss-side quantities of a traced pass, per sample."""
    n = len(labels)
    rows = np.arange(n)
    p_label = probs[rows, labels]
    # dL/dout: only the label entry (a probability that underflowed to 0 shows as the
    # largest float, not as -inf)
    d_out = np.zeros_like(probs)
    d_out[rows, labels] = -1.0 / np.maximum(p_label, np.finfo(p_label.dtype).tiny)
    # dout[label]/dt: the softmax Jacobian row of the label, as in the notes
    dout_dt = -probs * p_label[:, None]
    dout_dt[rows, labels] = p_label * (1 - p_label)
    return {names.LABELS: np.array(labels), names.LOSS: np.array(losses),
            names.DL_DOUT: d_out, names.DOUT_DT: dout_dt,
            names.DL_DT: dt * n}  # per sample: out - onehot(label)
