"""One pass for conv stacks: (conv -> [ReLU] -> pool) x B -> flatten -> dense [-> ReLU -> dense]...

The layers (engine/net/layers.py) are the definition; this is the same arithmetic laid out
for large products, used by ``Model.loss_and_grads`` and ``Trainer.step`` when no trace is
asked for (tests/engine/test_stack.py holds it equal to the layers, float64 to 1e-10). Ideas:

- Channels last everywhere. Each conv gathers its patches with one strided view of a padded
  input (no index array) copied into a reused buffer, in pooling-window order: every patch
  under offset (a, b) of every pooling window before offset (a, b + 1). One product per conv;
  the conv output is (N, q*q, S, C) and pooling is one reduction over axis 1, written
  straight into the zero-bordered input buffer of the next conv.
- Max-pooling and ReLU commute (ReLU of the window's maximum is the maximum of the ReLUs, and
  a window whose maximum is not positive passes no gradient either way), so with max-pooling
  the ReLU runs on the pooled map, a quarter of the values.
- The gradient of a conv's input: one batched product gives dL/dout times W[i, j]^T for
  every kernel offset (i, j), offset-major: each offset's share is a contiguous slab added
  into the padded input at its offset (k*k adds; 60-70% of the time of correlating the
  padded output gradient with the turned filters at k = 5).
- Weights and gradients: one flat array each (``params`` and ``grads`` are views of them).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convscope.engine.fast import pair
from convscope.engine.fast.fused import _REDUCE
from convscope.engine.fast.kernels import claim_first, packed
from convscope.engine.fast.layers import softmax_cross_entropy
from convscope.engine.fast.pair import one_blas_thread
from convscope.engine.fast.predict import Predictor
from convscope.engine.net.layers import out_size


def _add_slabs(dxp: np.ndarray, dpatch: np.ndarray, b) -> None:
    """dxp (N, Hp, Wp, C_in) = the sum of each kernel offset's share dpatch[i, j] (N, Ho, Wo,
    C_in), added at its offset (i, j)."""
    dxp.fill(0)
    for i in range(b.k):
        for j in range(b.k):
            dxp[:, i:i + b.ho, j:j + b.wo] += dpatch[i, j]


class Block:
    """conv -> [ReLU] -> pool over an input (H, W, C_in): the geometry the pass needs."""

    def __init__(self, conv, relu: bool, pool, h: int, w: int):
        self.conv, self.relu, self.pool = conv, relu, pool
        self.mode, self.q = pool.mode, pool.size
        self.reduce = _REDUCE[pool.mode]
        self.k, self.pad, self.c_in, self.c_out = conv.k, conv.pad, conv.c_in, conv.c_out
        self.h, self.w = h, w
        ho, wo = out_size(h, conv.k, 1, conv.pad), out_size(w, conv.k, 1, conv.pad)
        self.hq, self.wq = ho // self.q, wo // self.q  # pooled size (uncovered rows unused)
        self.s = self.hq * self.wq
        self.kk = conv.k * conv.k * conv.c_in  # patch length
        self.bias = "b" in conv.params
        self.width = self.kk + self.bias  # a patch and, with a bias, a 1 for it
        self.rows = self.q * self.q * self.s  # conv outputs that reach the loss, per sample
        self.ho, self.wo = ho, wo  # conv output size


def _plan(model):
    """([Block, ...], [(dense, relu after it), ...]) of a supported model, else None."""
    layers, blocks, dense = model.layers, [], []
    h, w = 28, 28
    i = 0
    while i < len(layers) and layers[i].kind == "conv":
        conv = layers[i]
        relu = i + 1 < len(layers) and layers[i + 1].kind == "relu"
        pool = layers[i + 1 + relu] if i + 1 + relu < len(layers) else None
        if pool is None or pool.kind != "pool" or pool.size != pool.stride or conv.stride != 1:
            return None
        if (conv.c_in == 1) != (not blocks):
            return None
        block = Block(conv, relu, pool, h, w)
        if min(block.hq, block.wq) < 1:
            return None
        blocks.append(block)
        h, w = block.hq, block.wq
        i += 2 + relu
    if not blocks or i >= len(layers) or layers[i].kind != "flatten":
        return None
    i += 1
    while i < len(layers) and layers[i].kind == "dense":
        relu = i + 1 < len(layers) and layers[i + 1].kind == "relu"
        dense.append((layers[i], relu))
        i += 1 + relu
    if i != len(layers) or not dense or dense[-1][1]:
        return None
    return blocks, dense


def supports(model) -> bool:
    """True for one or more conv (stride 1) -> [relu] -> pool (size = stride) blocks, then
    flatten and dense layers with optional ReLUs between them."""
    return _plan(model) is not None


def _windows(xp: np.ndarray, k: int, q: int, hq: int, wq: int) -> np.ndarray:
    """Strided view (N, q, q, Hq, Wq, k, k, C) of a padded map xp (N, Hp, Wp, C): patch of the
    conv output at row wi * q + a, column wj * q + b, for window (wi, wj) and offset (a, b)."""
    s0, s1, s2, s3 = xp.strides
    n, c = xp.shape[0], xp.shape[3]
    return as_strided(xp, (n, q, q, hq, wq, k, k, c),
                      (s0, s1, s2, q * s1, q * s2, s1, s2, s3), writeable=False)


def _spatial(a: np.ndarray, q: int, hq: int, wq: int) -> np.ndarray:
    """View (N, q, q, Hq, Wq, C) of the (q*Hq, q*Wq) corner of a map a (N, H, W, C): the
    window order of the patches, on the map's own pixels."""
    n, c = a.shape[0], a.shape[3]
    corner = a[:, :q * hq, :q * wq]
    s0, s1, s2, s3 = corner.strides
    return as_strided(corner, (n, q, q, hq, wq, c), (s0, s1, s2, q * s1, q * s2, s3))


class StackNet:
    """The pass of ``model`` (``supports(model)`` must hold). Re-homes the model's weights
    into one flat array: build it when the model is built, before anyone holds them."""

    def __init__(self, model, input_shape=(28, 28)):
        self.blocks, self.dense = _plan(model)
        self.dtype = np.dtype(model.dtype)
        self.h, self.w = input_shape
        first = self.blocks[0]
        self.rows, self.kk = first.rows, first.width  # the first conv's patches, per sample
        self._layout()
        self._bufs: dict = {}
        self.predictor = Predictor(self)
        # a batch whose work arrays would pass 96 MB runs through the layers in chunks
        self.max_batch = int(max(1, 96_000_000 // self._bytes_per_sample()))
        # multiply-adds of the largest product per sample (conv: rows x patch x filters)
        self.mnk = max(b.rows * b.width * b.c_out for b in self.blocks)

    # ---- storage ----------------------------------------------------------------------
    def _layout(self) -> None:
        """One flat array for the weights and one for the gradients; the layers' dicts
        hold views of them (the same shapes, C-ordered)."""
        layers = [b.conv for b in self.blocks] + [d for d, _ in self.dense]
        entries = [(layer, k) for layer in layers for k in ("W", "b") if k in layer.params]
        total = sum(layer.params[k].size for layer, k in entries)
        self.flat_w = np.empty(total, self.dtype)
        self.flat_g = np.zeros(total, self.dtype)
        self._ones = np.ones(total, self.dtype)
        self.flat_step = np.empty(total, self.dtype)  # the optimizer's work array
        self.views = []  # (layer, key, weight view, gradient view)
        self.slots = {}  # (layer, key) -> (weight view, gradient view)
        at = 0
        for layer, k in entries:
            old = layer.params[k]
            wv = self.flat_w[at:at + old.size].reshape(old.shape)
            gv = self.flat_g[at:at + old.size].reshape(old.shape)
            wv[...] = old
            layer.params[k] = wv
            self.views.append((layer, k, wv, gv))
            self.slots[(layer, k)] = (wv, gv)
            at += old.size
        # a conv's W and b are next to each other: the (k*k*C_in + 1, C_out) matrix that
        # multiplies a patch followed by a 1, and its gradient
        self.mats = {}
        for b in self.blocks:
            w, g = self.slots[(b.conv, "W")]
            at = (w.__array_interface__["data"][0]
                  - self.flat_w.__array_interface__["data"][0]) // w.itemsize
            self.mats[b.conv] = (self.flat_w[at:at + b.width * b.c_out].reshape(b.width, -1),
                                 self.flat_g[at:at + b.width * b.c_out].reshape(b.width, -1))

    def publish_grads(self) -> None:
        """Point the layers' ``grads`` at the flat gradient (a traced pass replaces them)."""
        for layer, k, _, g in self.views:
            layer.grads[k] = g

    def grad_total(self) -> float:
        """Sum of every gradient entry: finite exactly when every entry is."""
        return float(np.dot(self.flat_g, self._ones))

    def _bytes_per_sample(self) -> int:
        total = 0
        for i, b in enumerate(self.blocks):
            conv = b.rows * b.c_out
            total += b.rows * b.width + 3 * conv + conv // 4  # patches, conv, dconv, mask
            if i:  # padded input and its gradient, output gradient, its products per offset
                hp, wp = b.h + 2 * b.pad, b.w + 2 * b.pad
                total += 2 * hp * wp * b.c_in + b.ho * b.wo * (b.c_out + b.k * b.k * b.c_in)
        return total * self.dtype.itemsize

    # ---- input ------------------------------------------------------------------------
    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Float input (N, 28, 28) -> zero-bordered images (N, Hp, Wp, 1), what the pass
        reads: each pass gathers its first conv's patches itself, on its own thread."""
        p = self.blocks[0].pad
        xp = np.zeros((len(x), self.h + 2 * p, self.w + 2 * p, 1), self.dtype)
        xp[:, p:p + self.h, p:p + self.w, 0] = x
        return xp

    @staticmethod
    def _gather(xp: np.ndarray, b: Block, out: np.ndarray, ones: bool = True) -> np.ndarray:
        """Patches of the padded input ``xp`` into ``out`` (N, q*q*S, width), window order
        (``ones=False``: the bias column of ``out`` already holds its 1s)."""
        n, want = len(xp), (b.h + 2 * b.pad, b.w + 2 * b.pad, b.c_in)  # what the view reads
        if xp.shape[1:] != want or out.shape != (n, b.rows, b.width):
            raise ValueError(f"input {xp.shape} or patches {out.shape} do not fit {want}")
        np.copyto(out[:, :, :b.kk].reshape(n, b.q, b.q, b.hq, b.wq, b.k, b.k, b.c_in),
                  _windows(xp, b.k, b.q, b.hq, b.wq))
        if b.bias and ones:
            out[:, :, b.kk] = 1
        return out

    # ---- work arrays ------------------------------------------------------------------
    def _buffers(self, n: int) -> list:
        """Per block a dict of work arrays for batches of ``n``; the last entry is the
        dense part's."""
        bufs = self._bufs.get(n)
        if bufs is not None:
            return bufs
        if len(self._bufs) >= 3:
            del self._bufs[next(iter(self._bufs))]
        dt, blocks = self.dtype, self.blocks
        bufs = []
        for i, b in enumerate(blocks):
            q2 = b.q * b.q
            d = {"conv": np.empty((n, q2, b.hq, b.wq, b.c_out), dt),
                 "dconv": np.empty((n, q2, b.hq, b.wq, b.c_out), dt),
                 "gradT": np.empty((b.c_out, b.width), dt),  # the conv's gradient, turned
                 "spareT": np.empty((b.c_out, b.width), dt)}  # a half sum of it
            if b.mode != "avg":
                d["mask"] = np.empty((n, q2, b.hq, b.wq, b.c_out), bool)
                bits = packed(d["mask"].reshape(n, q2, b.s * b.c_out))
                if n == 1:  # one-dimensional rows: the bit operations cost half as much
                    bits = bits[0][None]
                d["offsets"] = [bits[:, o] for o in range(q2)]
                d["claimed"] = [np.empty_like(d["offsets"][0]) for _ in range(2)]
            if b.relu:
                d["positive"] = (np.empty((n, b.hq, b.wq, b.c_out), bool) if b.mode == "max"
                                 else np.empty(d["conv"].shape, bool))
            d["patches"] = np.empty((n, b.rows, b.width), dt)
            if b.bias:
                d["patches"][:, :, b.kk] = 1  # the 1 after each patch, once
            if i:
                p, hp, wp = b.pad, b.h + 2 * b.pad, b.w + 2 * b.pad
                d["xp"] = np.zeros((n, hp, wp, b.c_in), dt)
                d["x"] = d["xp"][:, p:p + b.h, p:p + b.w]  # the previous pool writes here
                # dL/dconv on the conv's own pixels (zero where no pooling window reaches)
                d["dout"] = np.zeros((n, b.ho, b.wo, b.c_out), dt)
                d["dspatial"] = _spatial(d["dout"], b.q, b.hq, b.wq)
                d["dpatch"] = np.empty((b.k * b.k, n * b.ho * b.wo, b.c_in), dt)
                d["dxp"] = np.empty((n, hp, wp, b.c_in), dt)
                d["dx"] = d["dxp"][:, p:p + b.h, p:p + b.w]
            bufs.append(d)
        for i, b in enumerate(blocks):  # where each pool writes: the next input, or flat
            bufs[i]["pooled"] = (bufs[i + 1]["x"] if i + 1 < len(blocks)
                                 else np.empty((n, b.hq, b.wq, b.c_out), dt))
        last = blocks[-1]
        # x[j]: input of dense j (x[0] the flattened pool, the last the logits); dx[j]: its
        # gradient (dx[0] shaped as the last pool's output)
        dense = {"x": [bufs[-1]["pooled"].reshape(n, -1)],
                 "dx": [np.empty((n, last.hq, last.wq, last.c_out), dt)]}
        for j, (layer, _) in enumerate(self.dense):
            units = layer.params["W"].shape[1]
            dense["x"].append(np.empty((n, units), dt))
            if j + 1 < len(self.dense):
                dense["dx"].append(np.empty((n, units), dt))
        bufs.append(dense)
        self._bufs[n] = bufs
        return bufs

    # ---- the pass ---------------------------------------------------------------------
    def _forward(self, xp: np.ndarray, bufs: list) -> np.ndarray:
        """Logits (N, 10) from zero-bordered images ``xp``; keeps what backward needs."""
        self._blocks(xp, bufs)
        return self._dense(bufs[-1]["x"])

    def _blocks(self, xp, bufs: list, alone: bool = False, first: int = 0) -> None:
        """The conv blocks from block ``first`` on (``xp``: block 0's zero-bordered input),
        each pool writing into ``bufs[i]["pooled"]``. ``alone``: on this thread only (else
        large gathers and products on two, engine/fast/pair.py)."""
        for i in range(first, len(self.blocks)):
            b, d = self.blocks[i], bufs[i]
            n, xp = len(d["pooled"]), d["xp"] if i else xp
            if alone:
                self._gather(xp, b, d["patches"], ones=False)
            else:  # (a large gather on two threads, when the batch was not split)
                pair.halves(lambda s, e, d=d, b=b, xp=xp: self._gather(
                    xp[s:e], b, d["patches"][s:e], ones=False), n, n * b.rows * b.width)
            pmat = d["P"] = d["patches"].reshape(n * b.rows, b.width)
            conv, mat = d["conv"], self.mats[b.conv][0]
            (np.dot if alone else pair.dot)(pmat, mat, conv.reshape(n * b.rows, b.c_out))
            if b.relu and b.mode != "max":  # (the product added the bias)
                np.maximum(conv, 0, out=conv)  # ReLU before pooling; conv > 0 where it passed
            pooled = d["pooled"]  # (N, Hq, Wq, C): the next conv's padded input, or flat
            b.reduce(conv, axis=1, out=pooled)
            self._after_pool(b, pooled)

    def _after_pool(self, b: Block, pooled: np.ndarray) -> None:
        if b.mode == "avg":
            pooled *= self.dtype.type(1 / (b.q * b.q))
        elif b.relu:
            np.maximum(pooled, 0, out=pooled)  # ReLU after max-pooling: the same values

    def _dense(self, xs: list) -> np.ndarray:
        """The dense layers: xs[0] (N, features) in, each layer's output into xs[j + 1]."""
        for j, (layer, relu) in enumerate(self.dense):
            w, _ = self.slots[(layer, "W")]
            out = xs[j + 1]
            np.dot(xs[j], w, out)
            out += layer.params["b"]
            if relu:
                np.maximum(out, 0, out=out)
        return xs[-1]

    def loss_and_grads(self, xp: np.ndarray, labels: np.ndarray, smoothing: float = 0.0):
        """Forward and backward over ``xp`` (N, Hp, Wp, 1) from ``prepare()``: fills
        every weight gradient (the mean over the batch). Returns (losses (N,), probs (N, 10))."""
        n = len(labels)
        with one_blas_thread(self.mnk * n):
            if pair.split_worth(self.mnk * n, n):  # each half of the batch on a thread
                losses, probs = pair.whole_halves(self, xp, labels, smoothing)
            else:
                losses, probs = self._loss_and_grads(xp, labels, smoothing)
        self.publish_grads()
        return losses, probs

    def _loss_and_grads(self, xp: np.ndarray, labels: np.ndarray, smoothing: float):
        n = len(labels)
        bufs = self._buffers(n)
        logits = self._forward(xp, bufs)
        losses, probs, d = softmax_cross_entropy(logits, labels, smoothing)
        dense = bufs[-1]
        xs, dxs = dense["x"], dense["dx"]
        for j in range(len(self.dense) - 1, -1, -1):
            layer, _ = self.dense[j]
            w, gw = self.slots[(layer, "W")]
            _, gb = self.slots[(layer, "b")]
            np.dot(xs[j].T, d, out=gw)  # dL/dW = input (outer) dL/dout, summed over the batch
            if n == 1:
                gb[...] = d[0]
            else:
                np.add.reduce(d, axis=0, out=gb)
            dx = dxs[j].reshape(n, -1)
            np.dot(d, w.T, dx)  # dL/dinput = dL/dout W^T
            if j and self.dense[j - 1][1]:  # through the ReLU after the dense layer before
                np.multiply(dx, xs[j] > 0, out=dx)
            d = dx
        dpool = dxs[0]  # (N, Hq, Wq, C)
        for i in range(len(self.blocks) - 1, -1, -1):
            dpool = self._block_backward(i, bufs[i], dpool)
        return losses, probs

    def _block_backward(self, i: int, d: dict, dpool: np.ndarray):
        """dL/dpool (N, Hq, Wq, C_out) -> the conv's gradients; returns dL/dinput of the
        block (N, H, W, C_in), or None for the first block."""
        b = self.blocks[i]
        n = len(dpool)
        pooled, conv, dconv = d["pooled"], d["conv"], d["dconv"]
        if b.relu and b.mode == "max":  # the ReLU ran on the pooled map
            np.multiply(dpool, np.greater(pooled, 0, out=d["positive"]), out=dpool)
        if b.mode == "avg":
            np.multiply(dpool[:, None], self.dtype.type(1 / (b.q * b.q)), out=dconv)
        else:
            self._winners(conv, pooled, d)
            np.multiply(d["mask"], dpool[:, None], out=dconv)
        if b.relu and b.mode != "max":
            np.multiply(dconv, np.greater(conv, 0, out=d["positive"]), out=dconv)
        drows = dconv.reshape(-1, b.c_out)
        # dL/dW and, last row, dL/db: patches^T dL/dconv, taken as (dL/dconv^T patches)^T,
        # the order OpenBLAS runs 1.7x faster for these tall, narrow matrices
        pair.dot_tn(drows, d["P"], d["gradT"], d["spareT"])
        np.copyto(self.mats[b.conv][1], d["gradT"].T)
        if not i:
            return None
        # dL/dinput: for each kernel offset (i, j), dL/dout times W[i, j]^T, all offsets in one
        # batched product (offset-major, so each is a contiguous slab), then added into the
        # padded input at its offset: k*k slab adds
        k = b.k
        np.copyto(d["dspatial"], dconv.reshape(n, b.q, b.q, b.hq, b.wq, b.c_out))
        w, _ = self.slots[(b.conv, "W")]
        wts = w.reshape(k * k, b.c_in, b.c_out).transpose(0, 2, 1)  # (k*k, C_out, C_in)
        dpatch = pair.matmul(d["dout"].reshape(1, -1, b.c_out), wts, d["dpatch"])
        dpatch = dpatch.reshape(k, k, n, b.ho, b.wo, b.c_in)
        pair.halves(lambda s, e: _add_slabs(d["dxp"][s:e], dpatch[:, :, s:e], b), n,
                    dpatch.size)
        return d["dx"]

    def _winners(self, conv, pooled, d) -> None:
        """d["mask"]: True at the first position (row-major inside the window) equal to its
        window's pooled value: all equal positions marked, then ``claim_first``."""
        np.equal(conv, pooled[:, None], out=d["mask"])
        claim_first(d["offsets"], d["claimed"])

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (N, 10) of float input (N, 28, 28): chunks on two threads
        (engine/fast/predict.py)."""
        return self.predictor.probs(x)
