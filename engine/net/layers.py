"""Layers with one contract, channels last.

Every layer: ``forward(x) -> out`` keeps in ``self.cache`` what backward needs;
``backward(dout) -> dx`` fills ``self.grads`` with the same keys and shapes as
``self.params`` and never updates a weight (the optimizer does).

Shapes: images (N, 28, 28) or maps (N, H, W, C); conv weights (k, k, C_in, C_out);
dense weights (n_in, n_out), bias (n_out,).

Speed (engine/kernels.py): large per-step arrays live in reusable work buffers; an array
handed out is reused only once nothing outside the layer refers to it, so results a caller
keeps are never overwritten. A layer object is not thread-safe: give each thread its own
model (``Model.copy()``).
"""
from __future__ import annotations

import numpy as np

from convscope.engine.fast.kernels import (
    ONE_THREAD_MNK,
    Buffers,
    column_sums,
    first_winners,
    matmul,
    matmul_tn,
    spread,
    winner_offsets,
)

DTYPE = np.float32
_BOOL = np.dtype(bool)


class Layer:
    kind = "layer"

    def __init__(self, name: str = ""):
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.cache: dict = {}
        self.buffers = Buffers()

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def out_shape(self, in_shape: tuple) -> tuple:
        return in_shape


def _out_size(size: int, k: int, stride: int, pad: int = 0) -> int:
    return (size + 2 * pad - k) // stride + 1


def _common_dtype(a: np.ndarray, b: np.ndarray) -> np.dtype:
    return a.dtype if a.dtype == b.dtype else np.result_type(a.dtype, b.dtype)


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
        self.cache = {}  # drop the previous step's arrays so their buffers can be reused
        squeeze = x.ndim == 3  # (N, 28, 28) images are one channel
        n, h, w = x.shape[:3]
        c = 1 if squeeze else x.shape[3]
        idx, (hp, wp, ho, wo) = self._index(h, w)
        wts = self.params["W"]
        dtype = _common_dtype(x, wts)
        if self.pad:
            p = self.pad
            xp = self.buffers.get(("pad", hp, wp, c), (n, hp, wp, c), dtype, zero=True)
            xp[:, p:p + h, p:p + w, :] = x.reshape(n, h, w, c)  # the border stays zero
            flat = xp.reshape(n, hp * wp * c)
        else:
            flat = x.reshape(n, h * w * c)
            if flat.dtype != dtype:
                flat = flat.astype(dtype)
        kk = self.k * self.k * c
        patches = self.buffers.get("patches", (n * ho * wo, kk), dtype)
        # mode="wrap" skips the bounds check (every index is in range by construction)
        flat.take(idx, axis=1, mode="wrap", out=patches.reshape(n, ho * wo * kk))
        out = self.buffers.get("out", (n, ho, wo, self.c_out), dtype)
        matmul(patches, wts.reshape(kk, self.c_out), out.reshape(n * ho * wo, self.c_out))
        if "b" in self.params:  # add the bias along whole output rows (Wo * C_out values)
            row = np.empty((wo, self.c_out), dtype)
            row[...] = self.params["b"]
            out2 = out.reshape(n * ho, wo * self.c_out)
            np.add(out2, row.reshape(-1), out=out2)
        self.cache = {"patches": patches, "x_shape": (n, h, w, c), "squeeze": squeeze}
        return out

    def backward(self, dout):
        patches = self.cache["patches"]
        n, h, w, c = self.cache["x_shape"]
        dmat = dout.reshape(-1, self.c_out)  # (N*Ho*Wo, C_out)
        # dL/dfilter: sum over every region of region * dL/dout (the notes' loop, as one matmul)
        self.grads["W"] = matmul_tn(patches, dmat).reshape(self.params["W"].shape)
        if "b" in self.params:
            self.grads["b"] = column_sums(dmat)
        if not self.need_dx:
            return None
        k, s, p = self.k, self.stride, self.pad
        _, (hp, wp, ho, wo) = self._index(h, w)
        # dL/dpatch for each kernel offset (i, j) apart: wts[o] is W[i, j] (C_out, C_in)
        wts = self.params["W"].reshape(k * k, c, self.c_out).transpose(0, 2, 1)
        dtype = _common_dtype(dmat, wts)
        m = n * ho * wo
        dpatch = self.buffers.get("dpatch", (k * k, m, c), dtype)  # offset-major: contiguous
        rows = max(1, (ONE_THREAD_MNK - 1) // (self.c_out * c))
        for r in range(0, m, rows):
            np.matmul(dmat[None, r:r + rows], wts, out=dpatch[:, r:r + rows])
        dpatch = dpatch.reshape(k, k, n, ho, wo, c)
        dxp = self.buffers.get("dxp", (n, hp, wp, c), dtype)
        dxp.fill(0)
        for i in range(k):  # loop over the k*k kernel offsets only; each add is a whole slab
            for j in range(k):
                dxp[:, i:i + s * ho:s, j:j + s * wo:s, :] += dpatch[i, j]
        dx = dxp[:, p:p + h, p:p + w, :] if p else dxp
        return dx[..., 0] if self.cache["squeeze"] else dx


class _PoolCache(dict):
    """Pool2D.cache on the tiled fast path: 'winners' (N, H, W, C) bool and 'arg'
    (N, Ho, Wo, C) int8 are worked out on first use (backward, traces, tests)."""

    def __missing__(self, key):
        if key == "winners":
            value = first_winners(self["x"], self["out"], self["k"])
        elif key == "arg":
            value = winner_offsets(self["winners"], self["k"])
        else:
            raise KeyError(key)
        self[key] = value
        return value


class Pool2D(Layer):
    """Max, average or min pooling over size x size windows with a stride.

    forward: x (N, H, W, C) -> out (N, Ho, Wo, C). Max and min pooling keep ``cache['arg']``
    (N, Ho, Wo, C), the winning offset inside each window: the first in row-major order on ties.

    Fast path (windows side by side tiling the map, the usual 2 x 2 / 2): reduce the window
    rows (contiguous runs of W*C values), then the window columns; the winner mask is worked
    out only when backward (or a trace) needs it.
    """

    kind = "pool"

    def __init__(self, mode="max", size=2, stride=2, name="pool"):
        super().__init__(name)
        if mode not in ("max", "avg", "min"):
            raise ValueError(f"unknown pooling mode {mode!r} (max, avg or min)")
        self.mode, self.size, self.stride = mode, size, stride
        self._pick = {"max": np.maximum, "min": np.minimum, "avg": np.add}[mode]

    def out_shape(self, in_shape):
        h, w, c = in_shape
        return (_out_size(h, self.size, self.stride), _out_size(w, self.size, self.stride), c)

    def _slab(self, x, i, j, ho, wo):
        s = self.stride
        return x[:, i:i + s * ho:s, j:j + s * wo:s, :]

    def forward(self, x):
        self.cache = {}  # drop the previous step's arrays so their buffers can be reused
        n, h, w, c = x.shape
        k = self.size
        if k != self.stride or k < 2 or h % k or w % k or not x.flags.c_contiguous:
            return self._forward_general(x)
        ho, wo = h // k, w // k
        pick = self._pick  # np.maximum, np.minimum, or np.add for the average
        x5 = x.reshape(n, ho, k, w, c)  # window rows next to each other: contiguous rows
        rows = self.buffers.get("rows", (n, ho, w, c), x.dtype)
        pick(x5[:, :, 0], x5[:, :, 1], out=rows)  # best of each column of each window
        for i in range(2, k):
            pick(rows, x5[:, :, i], out=rows)
        r5 = rows.reshape(n, ho, wo, k, c)
        out = self.buffers.get("out", (n, ho, wo, c), x.dtype)
        pick(r5[:, :, :, 0], r5[:, :, :, 1], out=out)  # best of the window
        for j in range(2, k):
            pick(out, r5[:, :, :, j], out=out)
        if self.mode == "avg":
            out *= 1.0 / (k * k)
            self.cache = {"x_shape": x.shape, "tiled": True}
        else:
            self.cache = _PoolCache(x_shape=x.shape, x=x, out=out, k=k)
        return out

    def _forward_general(self, x):
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
            np.copyto(arg, o, where=better)
        self.cache = {"x_shape": x.shape, "arg": arg}
        return best

    def _winners(self) -> np.ndarray:
        """The cached winner mask (N, H, W, C), computed into a work buffer on first use."""
        cache = self.cache
        eq = cache.get("winners")
        if eq is None:
            x = cache["x"]
            n, h, w, c = x.shape
            eq = self.buffers.get("winners", x.shape, _BOOL)
            up = self.buffers.get("spread", (n, h // self.size, w, c), x.dtype)
            cache["winners"] = first_winners(x, cache["out"], self.size, eq, up)
        return eq

    def mask(self) -> np.ndarray:
        """Boolean (N, H, W, C): True at the one winning input pixel of every window."""
        if isinstance(self.cache, _PoolCache):
            return self._winners().copy()
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
        cache = self.cache
        n, h, w, c = cache["x_shape"]
        ho, wo = dout.shape[1], dout.shape[2]
        k = self.size
        if "x" in cache or "tiled" in cache:
            winners = None if self.mode == "avg" else self._winners()
            # each window's gradient under its k columns, then masked (or scaled) row by row
            up = spread(dout, k, self.buffers.get("spread", (n, ho, w, c), dout.dtype))
            up = up[:, :, None]  # (N, Ho, 1, W, C)
            dx = self.buffers.get("dx", (n, h, w, c), dout.dtype)
            dx5 = dx.reshape(n, ho, k, w, c)
            if winners is None:
                np.multiply(up, dout.dtype.type(1.0 / (k * k)), out=dx5)
            else:
                np.multiply(winners.reshape(n, ho, k, w, c), up, out=dx5)
            return dx
        dx = np.zeros((n, h, w, c), dtype=dout.dtype)
        if self.mode == "avg":
            g = dout * (1.0 / (k * k))
            for o in range(k * k):
                i, j = divmod(o, k)
                self._slab(dx, i, j, ho, wo)[...] += g
            return dx
        arg = cache["arg"]
        for o in range(k * k):  # general case: add each offset's share (windows may overlap)
            i, j = divmod(o, k)
            self._slab(dx, i, j, ho, wo)[...] += np.where(arg == o, dout, 0)
        return dx


class ReLU(Layer):
    kind = "relu"

    def forward(self, x):
        self.cache = {}
        # against an array of zeros: NumPy's maximum with a scalar 0 is about 3x slower
        zeros = self.buffers.get("zeros", x.shape, x.dtype, zero=True)
        out = np.maximum(x, zeros, out=self.buffers.get("out", x.shape, x.dtype))
        self.cache = {"out": out}  # out > 0 exactly where x > 0
        return out

    def backward(self, dout):
        pos = np.greater(self.cache["out"], 0, out=self.buffers.get("pos", dout.shape, _BOOL))
        return np.multiply(dout, pos, out=self.buffers.get("dx", dout.shape, dout.dtype))


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
        wts = self.params["W"]
        out = matmul(x, wts, np.empty((x.shape[0], wts.shape[1]), _common_dtype(x, wts)))
        out += self.params["b"]
        return out

    def backward(self, dout):
        x = self.cache["x"]
        wts = self.params["W"]
        grads = self.grads
        grads.pop("W", None)  # let the previous step's gradient buffer be reused
        dw = self.buffers.get("dW", wts.shape, _common_dtype(x, dout))
        grads["W"] = matmul_tn(x, dout, dw)  # dL/dw = flattened input (outer) dL/dt
        grads["b"] = np.add.reduce(dout, axis=0)  # dL/db = dL/dt
        dx = self.buffers.get("dx", x.shape, _common_dtype(dout, wts))
        return matmul(dout, wts.T, dx)  # dL/dinput = W . dL/dt


_ROWS: dict[int, np.ndarray] = {}


def _rows(n: int) -> np.ndarray:
    """np.arange(n), kept: the softmax picks one entry per row on every step."""
    rows = _ROWS.get(n)
    if rows is None:
        rows = _ROWS[n] = np.arange(n)
        rows.flags.writeable = False
    return rows


def softmax(t: np.ndarray) -> np.ndarray:
    """Stable softmax over the last axis: subtract the max before exponentiating."""
    e = np.exp(t - np.maximum.reduce(t, axis=-1, keepdims=True))
    e /= np.add.reduce(e, axis=-1, keepdims=True)
    return e


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample loss -log(out[label]), (N,). Computed from probs clipped away from 0."""
    p = probs[np.arange(len(labels)), labels]
    return -np.log(np.maximum(p, np.finfo(probs.dtype).tiny))


def softmax_cross_entropy(t: np.ndarray, labels: np.ndarray):
    """Mean loss, probs (N, 10) and dL/dt = (out - onehot(label)) / N."""
    n = t.shape[0]
    z = t - np.maximum.reduce(t, axis=-1, keepdims=True)
    e = np.exp(z)
    total = np.add.reduce(e, axis=-1, keepdims=True)
    probs = e / total
    dt = probs.copy()
    if n == 1:  # the notes' per-sample step: plain indexing is cheaper
        label = int(labels[0])
        losses = np.log(total[0]) - z[0, label]  # -log(e_label / total), never log(0)
        dt[0, label] -= 1
        return losses, probs, dt
    rows = _rows(n)
    losses = np.log(total[:, 0]) - z[rows, labels]
    dt[rows, labels] -= 1
    dt /= n
    return losses, probs, dt
