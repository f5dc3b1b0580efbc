"""Layers with one contract, channels last: the design notes' maths, vectorised.

Every layer: ``forward(x) -> out`` keeps in ``self.cache`` what backward needs;
``backward(dout) -> dx`` fills ``self.grads`` with the same keys and shapes as
``self.params`` and never updates a weight (the optimizer does).

Shapes: images (N, 28, 28) or maps (N, H, W, C); conv weights (k, k, C_in, C_out);
dense weights (n_in, n_out), bias (n_out,).

These are the definitions. ``convscope.engine.fast.layers`` computes the same with reused
buffers and fewer NumPy calls; the model uses those unless asked for these (``fast=False``).
"""
from __future__ import annotations

import numpy as np

DTYPE = np.float32


def out_size(size: int, k: int, stride: int, pad: int = 0) -> int:
    """Positions a window of ``k`` takes along ``size`` (+ padding on both sides)."""
    return (size + 2 * pad - k) // stride + 1


class Layer:
    """The contract: ``forward(x) -> out``, ``backward(dout) -> dx``, ``out_shape``."""

    kind = "layer"
    need_dx = True  # False: backward skips dL/d(input) (the model's first layer)

    def __init__(self, name: str = ""):
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.cache: dict = {}

    @classmethod
    def from_spec(cls, spec: dict, in_shape: tuple, rng, dtype, name: str) -> Layer:
        """The layer a config entry describes, on an input of ``in_shape`` (no batch axis)."""
        return cls(name=name)

    def out_shape(self, in_shape: tuple) -> tuple:
        return in_shape


class Conv2D(Layer):
    """k x k convolution (cross-correlation, as in the notes), C_in -> C_out.

    forward: x (N, H, W, C_in) or (N, H, W) -> out (N, Ho, Wo, C_out). Every k x k x C_in
    region becomes one row of a matrix (im2col); then one product with the filters does the
    notes' "sum of region * filter" for every region and filter at once.
    """

    kind = "conv"

    def __init__(self, c_in, c_out, k=3, stride=1, pad=0, bias=False, rng=None,
                 init="notes", name="conv", dtype=DTYPE, need_dx=True):
        super().__init__(name)
        rng = rng if rng is not None else np.random.default_rng(0)
        self.c_in, self.c_out, self.k, self.stride, self.pad = c_in, c_out, k, stride, pad
        self.need_dx = need_dx
        if init == "notes":  # the design notes: N(0, 1) / 9 for a 3x3 filter
            w = rng.standard_normal((k, k, c_in, c_out)) / (k * k)
        else:  # He initialisation for ReLU stacks
            w = rng.standard_normal((k, k, c_in, c_out)) * np.sqrt(2.0 / (k * k * c_in))
        self.params["W"] = w.astype(dtype)  # (k, k, C_in, C_out)
        if bias:
            self.params["b"] = np.zeros(c_out, dtype=dtype)  # (C_out,)

    @classmethod
    def from_spec(cls, spec, in_shape, rng, dtype, name):
        return cls(in_shape[2], spec["filters"], spec.get("k", 3), spec.get("stride", 1),
                   spec.get("pad", 0), spec.get("bias", False), rng, spec.get("init", "notes"),
                   name, dtype)

    def out_shape(self, in_shape):
        return (out_size(in_shape[0], self.k, self.stride, self.pad),
                out_size(in_shape[1], self.k, self.stride, self.pad), self.c_out)

    def _windows(self, ho, wo):
        """(i, j, rows, cols): kernel offset (i, j) and the input rows and columns it meets."""
        s = self.stride
        for i in range(self.k):
            for j in range(self.k):
                yield i, j, slice(i, i + s * ho, s), slice(j, j + s * wo, s)

    def forward(self, x):
        squeeze = x.ndim == 3  # (N, 28, 28) images are one channel
        x4 = x[..., None] if squeeze else x
        n, h, w, c = x4.shape
        p, k = self.pad, self.k
        xp = np.pad(x4, ((0, 0), (p, p), (p, p), (0, 0)))  # zero border
        ho, wo, _ = self.out_shape((h, w, c))
        wts = self.params["W"]
        dtype = np.result_type(x4, wts)
        regions = np.empty((n, ho, wo, k, k, c), dtype)  # every region, (i, j) inside it
        for i, j, rows, cols in self._windows(ho, wo):
            regions[:, :, :, i, j, :] = xp[:, rows, cols, :]
        cols = regions.reshape(n * ho * wo, k * k * c)  # one region per row
        out = (cols @ wts.reshape(k * k * c, self.c_out)).reshape(n, ho, wo, self.c_out)
        if "b" in self.params:
            out += self.params["b"]
        self.cache = {"cols": cols, "x_shape": (n, h, w, c), "squeeze": squeeze}
        return out

    def backward(self, dout):
        cols = self.cache["cols"]  # (N*Ho*Wo, k*k*C_in)
        n, h, w, c = self.cache["x_shape"]
        dmat = dout.reshape(-1, self.c_out)  # (N*Ho*Wo, C_out)
        # dL/dfilter: sum over every region of region * dL/dout (the notes' loop, as one matmul)
        self.grads["W"] = (cols.T @ dmat).reshape(self.params["W"].shape)
        if "b" in self.params:
            self.grads["b"] = dmat.sum(axis=0)
        if not self.need_dx:
            return None
        p, k = self.pad, self.k
        ho, wo = dout.shape[1], dout.shape[2]
        # dL/dregion = dL/dout @ W^T, then each region's share goes back where it came from
        dregions = (dmat @ self.params["W"].reshape(k * k * c, self.c_out).T)
        dregions = dregions.reshape(n, ho, wo, k, k, c)
        dxp = np.zeros((n, h + 2 * p, w + 2 * p, c), dregions.dtype)
        for i, j, rows, cols_ in self._windows(ho, wo):
            dxp[:, rows, cols_, :] += dregions[:, :, :, i, j, :]
        dx = dxp[:, p:p + h, p:p + w, :]
        return dx[..., 0] if self.cache["squeeze"] else dx


class Pool2D(Layer):
    """Max, average or min pooling over size x size windows with a stride.

    forward: x (N, H, W, C) -> out (N, Ho, Wo, C). Max and min pooling keep ``cache['arg']``
    (N, Ho, Wo, C), the winning offset i * size + j inside each window: the first in
    row-major order on ties, so each window sends its gradient to exactly one pixel.
    """

    kind = "pool"

    def __init__(self, mode="max", size=2, stride=2, name="pool"):
        super().__init__(name)
        if mode not in ("max", "avg", "min"):
            raise ValueError(f"unknown pooling mode {mode!r} (max, avg or min)")
        self.mode, self.size, self.stride = mode, size, stride

    @classmethod
    def from_spec(cls, spec, in_shape, rng, dtype, name):
        return cls(spec.get("mode", "max"), spec.get("size", 2), spec.get("stride", 2), name)

    def out_shape(self, in_shape):
        h, w, c = in_shape
        return (out_size(h, self.size, self.stride), out_size(w, self.size, self.stride), c)

    def _offsets(self, ho, wo):
        """(o, slab view maker): window offset o = i * size + j in row-major order, and the
        (N, Ho, Wo, C) view of an (N, H, W, C) array at that offset of every window."""
        s = self.stride
        for o in range(self.size * self.size):
            i, j = divmod(o, self.size)
            yield o, (lambda a, i=i, j=j: a[:, i:i + s * ho:s, j:j + s * wo:s, :])

    def forward(self, x):
        ho, wo, _ = self.out_shape(x.shape[1:])
        offsets = list(self._offsets(ho, wo))
        if self.mode == "avg":
            out = sum(slab(x) for _, slab in offsets) / (self.size * self.size)
            self.cache = {"x_shape": x.shape}
            return out.astype(x.dtype, copy=False)
        best = offsets[0][1](x).copy()
        arg = np.zeros(best.shape, dtype=np.int8)
        for o, slab in offsets[1:]:
            v = slab(x)
            # strictly better only: on a tie the earlier offset keeps the window
            better = v > best if self.mode == "max" else v < best
            best = np.where(better, v, best)
            arg[better] = o
        self.cache = {"x_shape": x.shape, "arg": arg}
        return best

    def mask(self) -> np.ndarray:
        """Boolean (N, H, W, C): True at the one winning input pixel of every window."""
        arg = self.cache["arg"]
        m = np.zeros(self.cache["x_shape"], dtype=bool)
        for o, slab in self._offsets(arg.shape[1], arg.shape[2]):
            slab(m)[...] |= arg == o
        return m

    def backward(self, dout):
        dx = np.zeros(self.cache["x_shape"], dtype=dout.dtype)
        for o, slab in self._offsets(dout.shape[1], dout.shape[2]):
            if self.mode == "avg":  # each pixel of the window had 1/size^2 of the say
                slab(dx)[...] += dout / (self.size * self.size)
            else:  # only the winner moved the output
                slab(dx)[...] += np.where(self.cache["arg"] == o, dout, 0)
        return dx


class ReLU(Layer):
    """out = max(x, 0); dL/dx = dL/dout where x > 0, else 0."""

    kind = "relu"

    def forward(self, x):
        out = np.maximum(x, 0)
        self.cache = {"out": out}  # out > 0 exactly where x > 0
        return out

    def backward(self, dout):
        return dout * (self.cache["out"] > 0)


class Flatten(Layer):
    kind = "flatten"

    def out_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, x):
        self.cache = {"x_shape": x.shape}
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.cache["x_shape"])


class Dense(Layer):
    """t = x @ W + b.  x (N, n_in), W (n_in, n_out), b (n_out,) -> t (N, n_out)."""

    kind = "dense"

    def __init__(self, n_in, n_out, rng=None, init="notes", name="dense", dtype=DTYPE):
        super().__init__(name)
        rng = rng if rng is not None else np.random.default_rng(0)
        if init == "notes":  # the design notes: N(0, 1) / n_in
            w = rng.standard_normal((n_in, n_out)) / n_in
        else:
            w = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
        self.params["W"] = w.astype(dtype)
        self.params["b"] = np.zeros(n_out, dtype=dtype)

    @classmethod
    def from_spec(cls, spec, in_shape, rng, dtype, name):
        return cls(in_shape[0], spec["units"], rng, spec.get("init", "notes"), name, dtype)

    def out_shape(self, in_shape):
        return (self.params["W"].shape[1],)

    def forward(self, x):
        self.cache = {"x": x}
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        x = self.cache["x"]
        self.grads["W"] = x.T @ dout  # dL/dw = flattened input (outer) dL/dt
        self.grads["b"] = dout.sum(axis=0)  # dL/db = dL/dt
        return dout @ self.params["W"].T  # dL/dinput = W . dL/dt


# a config's "type" -> the class that builds it (Model and the fast layers look kinds up here)
KINDS = {"conv": Conv2D, "pool": Pool2D, "relu": ReLU, "flatten": Flatten, "dense": Dense}


def softmax(t: np.ndarray) -> np.ndarray:
    """Stable softmax over the last axis: subtract the max before exponentiating."""
    e = np.exp(t - t.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample loss -log(out[label]), (N,). Computed from probs clipped away from 0."""
    p = probs[np.arange(len(labels)), labels]
    return -np.log(np.maximum(p, np.finfo(probs.dtype).tiny))


def softmax_cross_entropy(t: np.ndarray, labels: np.ndarray, smoothing: float = 0.0):
    """Logits t (N, K) -> (per-sample losses (N,), probs (N, K), dL/dt (N, K)), where L is
    the mean loss over the batch: dL/dt = (probs - onehot(label)) / N. With label
    ``smoothing`` s the target is 1 - s on the label plus s/K on every class, and the loss
    -sum_k target[k] * log(probs[k]): the network is never pushed all the way to certainty."""
    n, k = t.shape
    rows = np.arange(n)
    z = t - t.max(axis=-1, keepdims=True)
    total = np.exp(z).sum(axis=-1)
    probs = np.exp(z) / total[:, None]
    losses = np.log(total) - z[rows, labels]  # -log(e_label / total), never log(0)
    dt = probs.copy()
    dt[rows, labels] -= 1 - smoothing
    if smoothing:  # -log(probs[k]) = log(total) - z[k], averaged over the K classes
        losses = (1 - smoothing) * losses + smoothing * (np.log(total) - z.mean(axis=-1))
        dt -= smoothing / k
    return losses, probs, dt / n
