"""One fused pass for the design notes' network family: conv -> [ReLU] -> pool -> flatten -> dense.

The layers (net/layers.py) are the definition; this is the same arithmetic with fewer,
larger NumPy calls, used by ``Model.loss_and_grads`` when no trace is asked for
(tests/engine/test_fused.py holds it equal to the layers). Three ideas:

- The im2col patches are gathered in pooling-window order: every patch under offset (a, b)
  of every window comes before offset (a, b + 1). The conv output is then (N, q*q, S, C)
  for S pooled pixels, and pooling is one reduction over axis 1; the winner mask is one
  comparison plus a first-claim pass over whole rows. The input is fixed data, so the
  Trainer prepares (gathers the patches of) a few hundred upcoming samples at once.
- The weights and gradients live in one flat array each (the layers' ``params`` and
  ``grads`` are views of them), so the finite check is one product and plain SGD is one
  update of the flat array.
- The dense weights are stored transposed (an F-ordered (n_in, n_out) view of a C-ordered
  (n_out, n_in) block): BLAS then reads them row by row for both products with one
  sample, 2-3x faster than the column-by-column walk.
"""
from __future__ import annotations

import numpy as np

from convscope.engine.fast.kernels import (
    ONE_THREAD_MNK,
    claim_first,
    column_sums,
    matmul,
    matmul_tn,
    packed,
)
from convscope.engine.fast.layers import softmax_cross_entropy
from convscope.engine.net.layers import out_size

_REDUCE = {"max": np.maximum.reduce, "min": np.minimum.reduce, "avg": np.add.reduce}


def _kinds(model) -> list[str]:
    return [layer.kind for layer in model.layers]


def supports(model) -> bool:
    """True for conv -> [relu] -> pool (windows side by side) -> flatten -> dense."""
    kinds = _kinds(model)
    if kinds not in (["conv", "pool", "flatten", "dense"],
                     ["conv", "relu", "pool", "flatten", "dense"]):
        return False
    pool = model.layers[kinds.index("pool")]
    return pool.size == pool.stride


class FusedNet:
    """The fused pass of ``model`` (``supports(model)`` must hold). Re-homes the model's
    weights into one flat array: build it when the model is built, before anyone holds the
    weight arrays."""

    def __init__(self, model, input_shape=(28, 28)):
        layers = model.layers
        self.conv, self.dense = layers[0], layers[-1]
        self.pool = layers[_kinds(model).index("pool")]
        self.relu = layers[1].kind == "relu"
        self.dtype = np.dtype(model.dtype)
        conv, pool = self.conv, self.pool
        q = self.q = pool.size
        self.reduce = _REDUCE[pool.mode]
        self.mode = pool.mode
        h, w = self.h, self.w = input_shape
        ho, wo = out_size(h, conv.k, conv.stride, conv.pad), out_size(w, conv.k, conv.stride,
                                                                          conv.pad)
        self.hp, self.wp = ho // q, wo // q  # pooled size (conv rows/columns past it unused)
        self.s = self.hp * self.wp
        self.c = conv.c_out
        self.kk = conv.k * conv.k
        self.rows = q * q * self.s  # conv outputs that reach the loss, per sample
        self._index = self._patch_index(h, w)
        self._layout()
        self._bufs: dict = {}

    # ---- storage ----------------------------------------------------------------------
    def _layout(self) -> None:
        """One flat array for the weights and one for the gradients; the layers' dicts
        hold views. Dense W is an F-ordered view of a (n_out, n_in) block."""
        entries = [(self.conv, k) for k in self.conv.params] + [(self.dense, "W"),
                                                                 (self.dense, "b")]
        total = sum(layer.params[k].size for layer, k in entries)
        self.flat_w = np.empty(total, self.dtype)
        self.flat_g = np.zeros(total, self.dtype)
        self.views = []  # (layer, key, weight view, gradient view)
        at = 0
        for layer, k in entries:
            old = layer.params[k]
            size = old.size
            if layer is self.dense and k == "W":
                n_in, n_out = old.shape
                wv = self.flat_w[at:at + size].reshape(n_out, n_in).T
                gv = self.flat_g[at:at + size].reshape(n_out, n_in).T
            else:
                wv = self.flat_w[at:at + size].reshape(old.shape)
                gv = self.flat_g[at:at + size].reshape(old.shape)
            wv[...] = old
            layer.params[k] = wv
            self.views.append((layer, k, wv, gv))
            at += size
        self.conv_w = self.conv.params["W"].reshape(self.kk, self.c)  # a view (C-ordered)
        self.conv_gw = self.views[0][3].reshape(self.kk, self.c)
        self.conv_b = self.conv.params.get("b")
        self.conv_gb = self.views[1][3] if self.conv_b is not None else None
        self.dense_w = self.dense.params["W"]  # (n_in, n_out), F-ordered
        self.dense_wt = self.dense_w.T  # (n_out, n_in), C-ordered
        self.dense_b = self.dense.params["b"]
        self.dense_gwt = self.views[-2][3].T  # (n_out, n_in), C-ordered
        self.dense_gb = self.views[-1][3]

    def publish_grads(self) -> None:
        """Point the layers' ``grads`` at the flat gradient (a traced pass replaces them)."""
        for layer, k, _, g in self.views:
            layer.grads[k] = g

    # ---- input ------------------------------------------------------------------------
    def _patch_index(self, h: int, w: int) -> np.ndarray:
        """Flat indices into one padded image, ordered (a, b, window row, window column,
        kernel row, kernel column): offset (a, b) of every window, then the next offset."""
        conv, q = self.conv, self.q
        k, st, p = conv.k, conv.stride, conv.pad
        wpad = w + 2 * p
        a = np.arange(q)[:, None, None, None, None, None]
        b = np.arange(q)[None, :, None, None, None, None]
        wi = np.arange(self.hp)[None, None, :, None, None, None]
        wj = np.arange(self.wp)[None, None, None, :, None, None]
        di = np.arange(k)[None, None, None, None, :, None]
        dj = np.arange(k)[None, None, None, None, None, :]
        rows = (wi * q + a) * st + di  # conv output row (wi * q + a), kernel row di
        cols = (wj * q + b) * st + dj
        return (rows * wpad + cols).reshape(-1).astype(np.intp)

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Float input (N, 28, 28) -> patches (N, q*q*S, k*k) in window order."""
        n = len(x)
        p = self.conv.pad
        if p:
            h, w = self.h, self.w
            padded = np.zeros((n, h + 2 * p, w + 2 * p), self.dtype)
            padded[:, p:p + h, p:p + w] = x
            x = padded
        flat = np.ascontiguousarray(x, dtype=self.dtype).reshape(n, -1)
        out = np.empty((n, self.rows * self.kk), self.dtype)
        flat.take(self._index, axis=1, mode="wrap", out=out)
        return out.reshape(n, self.rows, self.kk)

    # ---- the pass ---------------------------------------------------------------------
    def _buffers(self, n: int) -> dict:
        bufs = self._bufs.get(n)
        if bufs is None:
            if len(self._bufs) > 4:
                self._bufs.clear()
            q2, s, c, dt = self.q * self.q, self.s, self.c, self.dtype
            bufs = {"conv": np.empty((n, q2, s, c), dt), "pooled": np.empty((n, s, c), dt),
                    "dconv": np.empty((n, q2, s, c), dt), "mask": np.empty((n, q2, s, c), bool),
                    "dflat": np.empty((n, s * c), dt),
                    "logits": np.empty((n, len(self.dense_b)), dt)}
            if self.relu:
                bufs["act"] = np.empty((n, q2, s, c), dt)
                bufs["positive"] = np.empty((n, q2, s, c), bool)
            size = s * c
            bits = packed(bufs["mask"].reshape(n, q2, size))
            if n == 1:  # one-dimensional rows: the bit operations below cost half as much
                bits = bits[0][None]
            bufs["offsets"] = [bits[:, o] for o in range(q2)]  # one row per window offset
            bufs["claimed"] = [np.empty_like(bufs["offsets"][0]) for _ in range(2)]
            # the dense products of a small batch are one BLAS call each: no row blocks
            small = n * size * self.dense_w.shape[1] < ONE_THREAD_MNK
            bufs["dot"] = np.dot if small else matmul
            # the same arrays under the shapes the products and reductions need
            bufs["conv_rows"] = bufs["conv"].reshape(n * self.rows, c)
            bufs["dconv_rows"] = bufs["dconv"].reshape(n * self.rows, c)
            bufs["flat"] = bufs["pooled"].reshape(n, size)
            bufs["dpool"] = bufs["dflat"].reshape(n, 1, s, c)
            bufs["pooled_up"] = bufs["pooled"].reshape(n, 1, s, c)
            self._bufs[n] = bufs
        return bufs

    def loss_and_grads(self, patches: np.ndarray, labels: np.ndarray, smoothing: float = 0.0):
        """Forward and backward over ``patches`` (N, q*q*S, k*k) from ``prepare()``: fills
        every weight gradient (the mean over the batch). Returns (losses (N,), probs (N, 10))."""
        n = len(labels)
        b = self._buffers(n)
        conv = b["conv"]
        pmat = patches.reshape(n * self.rows, self.kk)
        matmul(pmat, self.conv_w, b["conv_rows"])
        if self.conv_b is not None:
            b["conv_rows"] += self.conv_b
        act = conv
        if self.relu:
            act = np.maximum(conv, 0, out=b["act"])
        pooled = b["pooled"]
        self.reduce(act, axis=1, out=pooled)
        if self.mode == "avg":
            pooled *= self.dtype.type(1 / (self.q * self.q))
        flat = b["flat"]
        # the dense products in one-thread row blocks too: with 16 filters and more they pass
        # OpenBLAS's threading threshold at batch 32 (a second thread stalls on a busy core)
        dot = b["dot"]
        logits = dot(flat, self.dense_w, b["logits"])
        np.add(logits, self.dense_b, out=logits)
        losses, probs, dt = softmax_cross_entropy(logits, labels, smoothing)
        # dense: dL/dW^T = dt^T flat, dL/db = column sums of dt, dL/dflat = dt W^T
        dot(dt.T, flat, self.dense_gwt)
        if n == 1:
            self.dense_gb[...] = dt[0]
        else:
            np.add.reduce(dt, axis=0, out=self.dense_gb)
        dot(dt, self.dense_wt, b["dflat"])
        dpool = b["dpool"]
        dconv = b["dconv"]
        if self.mode == "avg":
            np.multiply(dpool, self.dtype.type(1 / (self.q * self.q)), out=dconv)
        else:
            self._winners(act, b)
            np.multiply(b["mask"], dpool, out=dconv)
        if self.relu:
            np.multiply(dconv, np.greater(conv, 0, out=b["positive"]), out=dconv)
        dmat = b["dconv_rows"]
        matmul_tn(pmat, dmat, out=self.conv_gw)
        if self.conv_gb is not None:
            self.conv_gb[...] = column_sums(dmat)
        self.publish_grads()
        return losses, probs

    def _winners(self, act, b) -> None:
        """b["mask"]: True at the first position (row-major inside the window) equal to
        its window's pooled value: all equal positions are marked, then ``claim_first``."""
        np.equal(act, b["pooled_up"], out=b["mask"])
        claim_first(b["offsets"], b["claimed"])
