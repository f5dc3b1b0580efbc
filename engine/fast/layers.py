"""The layers of ``convscope.engine.net.layers``, computed faster: same contract, same
results (tests hold them equal in float64 to 1e-10).

Large per-step arrays live in reusable work buffers (``kernels.Buffers``); an array handed out
is reused only once nothing outside the layer refers to it, so results a caller keeps are never
overwritten. Products run on one BLAS thread in row blocks; pooling reduces whole rows and
works out its winner mask only when backward (or a trace) asks, with the packed first-winner
pass of ``kernels.first_winners``. A layer object is not thread-safe: give each thread its own
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
from convscope.engine.net import layers as plain
from convscope.engine.net.layers import out_size

_BOOL = np.dtype(bool)


class _Buffered:
    """Gives a layer its own work buffers."""

    @property
    def buffers(self) -> Buffers:
        buffers = self.__dict__.get("_buffers")
        if buffers is None:
            buffers = self.__dict__["_buffers"] = Buffers()
        return buffers


def _common_dtype(a: np.ndarray, b: np.ndarray) -> np.dtype:
    return a.dtype if a.dtype == b.dtype else np.result_type(a.dtype, b.dtype)


class Conv2D(_Buffered, plain.Conv2D):
    """Conv2D: every patch gathered with one precomputed index (im2col into a work buffer),
    then one matmul; dL/dx offset by offset into whole slabs."""

    _index_key = None

    def _index(self, h, w):
        """Flat indices (Ho*Wo*k*k*C_in,) of every patch element in one padded sample."""
        key = (h, w)
        if self._index_key != key:
            k, s, c = self.k, self.stride, self.c_in
            hp, wp = h + 2 * self.pad, w + 2 * self.pad
            ho, wo = out_size(h, k, s, self.pad), out_size(w, k, s, self.pad)
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


class Pool2D(_Buffered, plain.Pool2D):
    """Pool2D. Fast path (windows side by side tiling the map, the usual 2 x 2 / 2): reduce
    the window rows (contiguous runs of W*C values), then the window columns; the winner mask
    is worked out only when backward (or a trace) needs it. Other windows: the plain layer."""

    def forward(self, x):
        self.cache = {}  # drop the previous step's arrays so their buffers can be reused
        n, h, w, c = x.shape
        k = self.size
        if k != self.stride or k < 2 or h % k or w % k or not x.flags.c_contiguous:
            return super().forward(x)
        ho, wo = h // k, w // k
        pick = {"max": np.maximum, "min": np.minimum, "avg": np.add}[self.mode]
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
        return super().mask()

    def backward(self, dout):
        cache = self.cache
        n, h, w, c = cache["x_shape"]
        ho, k = dout.shape[1], self.size
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
        return super().backward(dout)


class ReLU(_Buffered, plain.ReLU):
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


class Dense(_Buffered, plain.Dense):
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


KINDS = {**plain.KINDS, "conv": Conv2D, "pool": Pool2D, "relu": ReLU, "dense": Dense}

_ROWS: dict[int, np.ndarray] = {}


def _rows(n: int) -> np.ndarray:
    """np.arange(n), kept: the softmax picks one entry per row on every step."""
    rows = _ROWS.get(n)
    if rows is None:
        rows = _ROWS[n] = np.arange(n)
        rows.flags.writeable = False
    return rows


def softmax_cross_entropy(t: np.ndarray, labels: np.ndarray, smoothing: float = 0.0):
    """``net.layers.softmax_cross_entropy``: (per-sample losses (N,), probs (N, 10), dL/dt
    of the mean loss (N, 10)), with one sample picked by plain indexing."""
    if smoothing:  # the recipes that smooth train in batches: the layers' arithmetic
        return plain.softmax_cross_entropy(t, labels, smoothing)
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
