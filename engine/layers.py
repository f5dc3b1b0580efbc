"""Layers with one contract, channels last.

Every layer: ``forward(x) -> out`` keeps in ``self.cache`` what backward needs;
``backward(dout) -> dx`` fills ``self.grads`` with the same keys and shapes as
``self.params`` and never updates a weight (the optimizer does).

Shapes: images (N, 28, 28) or maps (N, H, W, C); conv weights (k, k, C_in, C_out);
dense weights (n_in, n_out), bias (n_out,).
"""
from __future__ import annotations

import numpy as np

DTYPE = np.float32


class Layer:
    kind = "layer"

    def __init__(self, name: str = ""):
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.cache: dict = {}

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def out_shape(self, in_shape: tuple) -> tuple:
        return in_shape


def _out_size(size: int, k: int, stride: int, pad: int = 0) -> int:
    return (size + 2 * pad - k) // stride + 1


class Conv2D(Layer):
    """k x k convolution (cross-correlation, as in the notes), C_in -> C_out.

    forward: x (N, H, W, C_in) or (N, H, W) -> out (N, Ho, Wo, C_out)
    Every k x k x C_in patch is gathered with one precomputed index (im2col), then one matmul.
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
        self._index_key = None

    def out_shape(self, in_shape):
        h, w = in_shape[0], in_shape[1]
        return (_out_size(h, self.k, self.stride, self.pad),
                _out_size(w, self.k, self.stride, self.pad), self.c_out)

    def _index(self, h, w):
        """Flat indices (Ho*Wo*k*k*C_in,) of every patch element in one padded sample."""
        key = (h, w)
        if self._index_key != key:
            k, s, c = self.k, self.stride, self.c_in
            hp, wp = h + 2 * self.pad, w + 2 * self.pad
            ho, wo = _out_size(h, k, s, self.pad), _out_size(w, k, s, self.pad)
            oi = (np.arange(ho) * s)[:, None, None, None, None]
            oj = (np.arange(wo) * s)[None, :, None, None, None]
            di = np.arange(k)[None, None, :, None, None]
            dj = np.arange(k)[None, None, None, :, None]
            ch = np.arange(c)[None, None, None, None, :]
            idx = ((oi + di) * wp + (oj + dj)) * c + ch  # (Ho, Wo, k, k, C_in)
            self._idx = idx.reshape(-1).astype(np.intp)
            self._geom = (hp, wp, ho, wo)
            self._index_key = key
        return self._idx, self._geom

    def forward(self, x):
        squeeze = x.ndim == 3
        if squeeze:  # (N, 28, 28) images are one channel
            x = x[..., None]
        n, h, w, c = x.shape
        idx, (hp, wp, ho, wo) = self._index(h, w)
        if self.pad:
            x = np.pad(x, ((0, 0), (self.pad, self.pad), (self.pad, self.pad), (0, 0)))
        flat = x.reshape(n, hp * wp * c)
        kk = self.k * self.k * c
        patches = np.take(flat, idx, axis=1, mode="wrap").reshape(n * ho * wo, kk)
        wmat = self.params["W"].reshape(kk, self.c_out)
        out = patches @ wmat  # (N*Ho*Wo, C_out)
        if "b" in self.params:
            out += self.params["b"]
        self.cache = {"patches": patches, "x_shape": (n, h, w, c), "squeeze": squeeze}
        return out.reshape(n, ho, wo, self.c_out)

    def backward(self, dout):
        patches = self.cache["patches"]
        n, h, w, c = self.cache["x_shape"]
        dmat = dout.reshape(-1, self.c_out)  # (N*Ho*Wo, C_out)
        # dL/dfilter: sum over every region of region * dL/dout (the notes' loop, as one matmul)
        self.grads["W"] = (patches.T @ dmat).reshape(self.params["W"].shape)
        if "b" in self.params:
            self.grads["b"] = dmat.sum(axis=0)
        if not self.need_dx:
            return None
        k, s, p = self.k, self.stride, self.pad
        _, (hp, wp, ho, wo) = self._index(h, w)
        wmat = self.params["W"].reshape(-1, self.c_out)
        dpatch = (dmat @ wmat.T).reshape(n, ho, wo, k, k, c)
        dxp = np.zeros((n, hp, wp, c), dtype=dout.dtype)
        for i in range(k):  # loop over the k*k kernel offsets only; each add is a whole slab
            for j in range(k):
                dxp[:, i:i + s * ho:s, j:j + s * wo:s, :] += dpatch[:, :, :, i, j, :]
        dx = dxp[:, p:p + h, p:p + w, :] if p else dxp
        return dx[..., 0] if self.cache["squeeze"] else dx


class Pool2D(Layer):
    """Max, average or min pooling over size x size windows with a stride.

    forward: x (N, H, W, C) -> out (N, Ho, Wo, C). Max and min pooling keep ``cache['arg']``
    (N, Ho, Wo, C), the winning offset inside each window: the first in row-major order on ties.
    """

    kind = "pool"

    def __init__(self, mode="max", size=2, stride=2, name="pool"):
        super().__init__(name)
        if mode not in ("max", "avg", "min"):
            raise ValueError(f"unknown pooling mode {mode!r} (max, avg or min)")
        self.mode, self.size, self.stride = mode, size, stride

    def out_shape(self, in_shape):
        h, w, c = in_shape
        return (_out_size(h, self.size, self.stride), _out_size(w, self.size, self.stride), c)

    def _slab(self, x, i, j, ho, wo):
        s = self.stride
        return x[:, i:i + s * ho:s, j:j + s * wo:s, :]

    def forward(self, x):
        n, h, w, c = x.shape
        ho, wo, _ = self.out_shape((h, w, c))
        k = self.size
        offsets = [(i, j) for i in range(k) for j in range(k)]  # row-major order
        if self.mode == "avg":
            out = self._slab(x, 0, 0, ho, wo).copy()
            for i, j in offsets[1:]:
                out += self._slab(x, i, j, ho, wo)
            out *= 1.0 / (k * k)
            self.cache = {"x_shape": x.shape}
            return out
        best = self._slab(x, 0, 0, ho, wo).copy()
        arg = np.zeros(best.shape, dtype=np.int8)
        better = np.empty(best.shape, dtype=bool)
        for o, (i, j) in enumerate(offsets[1:], start=1):
            v = self._slab(x, i, j, ho, wo)
            if self.mode == "max":
                np.greater(v, best, out=better)  # strict: the first winner keeps ties
            else:
                np.less(v, best, out=better)
            np.copyto(best, v, where=better)
            arg[better] = o
        self.cache = {"x_shape": x.shape, "arg": arg}
        return best

    def mask(self) -> np.ndarray:
        """Boolean (N, H, W, C): True at the one winning input pixel of every window."""
        n, h, w, c = self.cache["x_shape"]
        arg = self.cache["arg"]
        ho, wo = arg.shape[1], arg.shape[2]
        m = np.zeros((n, h, w, c), dtype=bool)
        k = self.size
        for o in range(k * k):
            i, j = divmod(o, k)
            self._slab(m, i, j, ho, wo)[...] |= arg == o
        return m

    def backward(self, dout):
        n, h, w, c = self.cache["x_shape"]
        ho, wo = dout.shape[1], dout.shape[2]
        k = self.size
        dx = np.zeros((n, h, w, c), dtype=dout.dtype)
        if self.mode == "avg":
            g = dout * (1.0 / (k * k))
            for o in range(k * k):
                i, j = divmod(o, k)
                self._slab(dx, i, j, ho, wo)[...] += g
            return dx
        arg = self.cache["arg"]
        if k == self.stride and h == k * ho and w == k * wo:
            # non-overlapping windows tiling the map: route with a one-hot over the window
            onehot = arg[..., None] == np.arange(k * k, dtype=np.int8)  # (N, Ho, Wo, C, k*k)
            routed = onehot * dout[..., None]
            routed = routed.reshape(n, ho, wo, c, k, k).transpose(0, 1, 4, 2, 5, 3)
            return routed.reshape(n, h, w, c)
        for o in range(k * k):  # general case: add each offset's share (windows may overlap)
            i, j = divmod(o, k)
            self._slab(dx, i, j, ho, wo)[...] += np.where(arg == o, dout, 0)
        return dx


class ReLU(Layer):
    kind = "relu"

    def forward(self, x):
        self.cache = {"pos": x > 0}
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * self.cache["pos"]


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


def softmax(t: np.ndarray) -> np.ndarray:
    """Stable softmax over the last axis: subtract the max before exponentiating."""
    z = t - t.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample loss -log(out[label]), (N,). Computed from probs clipped away from 0."""
    p = probs[np.arange(len(labels)), labels]
    return -np.log(np.maximum(p, np.finfo(probs.dtype).tiny))


def softmax_cross_entropy(t: np.ndarray, labels: np.ndarray):
    """Mean loss, probs (N, 10) and dL/dt = (out - onehot(label)) / N."""
    n = t.shape[0]
    z = t - t.max(axis=-1, keepdims=True)
    logsum = np.log(np.exp(z).sum(axis=-1, keepdims=True))
    logp = z - logsum
    probs = np.exp(logp)
    losses = -logp[np.arange(n), labels]
    dt = probs.copy()
    dt[np.arange(n), labels] -= 1
    dt /= n
    return losses, probs, dt
