"""Inference for the conv-stack pass (engine/fast/stack.py): probabilities of many images.

The training pass splits each large product of one batch between two threads
(engine/fast/pair.py). Inference has no batch to keep together, so here each thread runs
whole groups of images, forward only, on work arrays of its own: the caller and one helper
thread take the next group in turn until none is left (a thread that gets no core only
holds up the group it has), each product on one BLAS thread, nothing handed over inside a
group. In a group the conv blocks run a few images at a time, so each product's patches
stay in the processor's caches, and the dense layers once for the whole group, so their
weights are read once per group rather than once per few images.

The first conv (one input channel) is laid out for its input: the padded image is read as
one flat row, in which the pixels under kernel offset (i, j) of every output position are
one contiguous run if the output keeps the padded width (its last few columns are computed
and never used). Its patches are then k*k long copies, and the conv output comes channel by
channel, (C, N, Ho, Wp), pooled by two reductions and turned channels-last for the next conv.

Every image is computed alone, so groups and threads change no value (tests/engine/
test_stack.py holds the result equal to the layers, float64 to 1e-10).
"""
from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convscope.engine.fast.pair import one_blas_thread
from convscope.engine.net.layers import softmax

# The conv blocks run as many images at a time as keep their largest patch matrix under
# this many bytes (lenet, 16 filters: 8 images); the dense layers run GROUP images at a time.
PATCH_BYTES = 2_600_000
GROUP = 64
_STATE = {"enabled": True, "pool": None}
_LOCK = threading.Lock()


def use_helper(on: bool) -> None:
    """Let inference use its helper thread (True, the default) or keep to the caller's."""
    _STATE["enabled"] = bool(on)


def _pool() -> ThreadPoolExecutor:
    """The helper thread (its own, not the training pass's: an evaluation running beside
    training never makes a training step wait)."""
    with _LOCK:
        if _STATE["pool"] is None:
            _STATE["pool"] = ThreadPoolExecutor(1, thread_name_prefix="convscope-predict")
        return _STATE["pool"]


_COMBINE = {"max": np.maximum, "min": np.minimum, "avg": np.add}


def _fold(mode: str, v: np.ndarray, axis: int, out: np.ndarray) -> None:
    """out = the pooling ``mode``'s reduction of v over a short ``axis``, as q - 1 element-wise
    operations on whole slices (NumPy's reduce over an axis of 2 or 3 loops per element)."""
    combine, q = _COMBINE[mode], v.shape[axis]

    def at(r):
        return v[(slice(None),) * axis + (r,)]
    if q == 1:
        np.copyto(out, at(0))
        return
    combine(at(0), at(1), out=out)
    for r in range(2, q):
        combine(out, at(r), out=out)


def _front(flat: np.ndarray, shape: tuple) -> np.ndarray:
    """The start of a flat work array as a contiguous array of ``shape``."""
    return flat[:int(np.prod(shape))].reshape(shape)


class Predictor:
    """``probs(x)`` of a StackNet: forward-only work arrays per thread, groups on two threads.
    ``chunk``: images per conv pass; ``group``: images per dense pass (a multiple of it)."""

    def __init__(self, net, chunk: int | None = None, group: int = GROUP):
        self.net = net
        largest = max(b.rows * b.width for b in net.blocks) * net.dtype.itemsize
        self.chunk = int(chunk or min(64, max(2, PATCH_BYTES // largest)))
        self.group = max(1, group // self.chunk) * self.chunk
        self._free: list = []  # work arrays of threads that have finished, reused
        self._free_lock = threading.Lock()

    # ---- work arrays ------------------------------------------------------------------
    def _arrays(self) -> dict:
        with self._free_lock:
            if self._free:
                return self._free.pop()
        return self._new_arrays()

    def _new_arrays(self) -> dict:
        """Forward-only work arrays of one thread: the conv blocks' for ``chunk`` images,
        laid out as ``StackNet._blocks`` reads them, and the dense layers' for a group."""
        net, dt, n = self.net, self.net.dtype, self.chunk
        blocks = net.blocks
        bufs = [{}]  # the first block's arrays: _first_arrays
        for b in blocks[1:]:
            p = b.pad
            d = {"conv": np.empty((n, b.q * b.q, b.hq, b.wq, b.c_out), dt),
                 "patches": np.empty((n, b.rows, b.width), dt),
                 "xp": np.zeros((n, b.h + 2 * p, b.w + 2 * p, b.c_in), dt)}
            if b.bias:
                d["patches"][:, :, b.kk] = 1  # the 1 after each patch, once
            d["x"] = d["xp"][:, p:p + b.h, p:p + b.w]  # the previous pool writes here
            bufs.append(d)
        for i in range(len(blocks) - 1):
            bufs[i]["pooled"] = bufs[i + 1]["x"]
        xs = [np.empty((self.group, blocks[-1].s * blocks[-1].c_out), dt)]
        xs += [np.empty((self.group, layer.params["W"].shape[1]), dt) for layer, _ in net.dense]
        return {"bufs": bufs, "xs": xs, **self._first_arrays()}

    def _first_arrays(self) -> dict:
        """The first conv's: padded images as flat rows (k - 1 zeros after each, read only
        for unused columns); flat storage for its patches, offset-major (k*k [+ 1], N, Ho,
        Wp), its output and its pooling, channels first (N-image arrays are views of their
        start, contiguous for any N)."""
        b, net, dt, n = self.net.blocks[0], self.net, self.net.dtype, self.chunk
        hp, wp = net.h + 2 * b.pad, net.w + 2 * b.pad
        flat = np.zeros((n, hp * wp + b.k - 1), dt)
        image = flat[:, :hp * wp].reshape(n, hp, wp)[:, b.pad:b.pad + net.h,
                                                     b.pad:b.pad + net.w]
        return {"flat": flat, "image": image, "wp": wp,
                "pt": np.empty(b.width * n * b.ho * wp, dt),
                "convT": np.empty(b.c_out * n * b.ho * wp, dt),
                "rowsT": np.empty(b.c_out * n * b.hq * wp, dt),
                "pooledT": np.empty(b.c_out * n * b.hq * b.wq, dt)}

    # ---- the pass ---------------------------------------------------------------------
    def _first_block(self, a: dict, x: np.ndarray, pooled: np.ndarray) -> None:
        """The first conv -> [ReLU] -> pool of x (m, 28, 28) into ``pooled`` (m, Hq, Wq, C)."""
        b, m, wp, q = self.net.blocks[0], len(x), a["wp"], self.net.blocks[0].q
        flat = a["flat"][:m]
        a["image"][:m] = x
        pt = _front(a["pt"], (b.width, m, b.ho * wp))
        s = flat.strides  # the run of offset (i, j) starts i rows and j pixels in
        runs = as_strided(flat, (b.k, b.k, m, b.ho * wp), (wp * s[1], s[1], s[0], s[1]),
                          writeable=False)
        np.copyto(pt[:b.kk].reshape(b.k, b.k, m, b.ho * wp), runs)
        if b.bias:
            pt[b.kk] = 1
        conv = _front(a["convT"], (b.c_out, m, b.ho, wp))
        # (C, m, Ho, Wp) = W^T (C, k*k [+ 1]) @ patches, the bias riding in the product
        np.dot(self.net.mats[b.conv][0].T, pt.reshape(b.width, -1),
               conv.reshape(b.c_out, -1))
        if b.relu and b.mode != "max":
            np.maximum(conv, 0, out=conv)
        rows = _front(a["rowsT"], (b.c_out, m, b.hq, wp))  # each window's rows, then columns
        _fold(b.mode, conv[:, :, :b.hq * q].reshape(b.c_out, m, b.hq, q, wp), 3, rows)
        out = _front(a["pooledT"], (b.c_out, m, b.hq, b.wq))
        _fold(b.mode, rows[..., :b.wq * q].reshape(b.c_out, m, b.hq, b.wq, q), 4, out)
        self.net._after_pool(b, out)
        np.copyto(pooled, out.transpose(1, 2, 3, 0))

    def _group(self, a: dict, x: np.ndarray, out: np.ndarray) -> None:
        """out (g, classes) = probabilities of x (g, 28, 28), g <= the group size."""
        net, g, bufs = self.net, len(x), a["bufs"]
        last = net.blocks[-1]
        feats = a["xs"][0][:g].reshape(g, last.hq, last.wq, last.c_out)
        for s in range(0, g, self.chunk):
            part = x[s:s + self.chunk]
            m = len(part)
            if m != self.chunk:  # a shorter last chunk: views of the arrays' first rows
                bufs = [{k: v[:m] for k, v in d.items() if k != "pooled"} for d in bufs]
                for i in range(len(bufs) - 1):
                    bufs[i]["pooled"] = bufs[i + 1]["x"]
            bufs[-1]["pooled"] = feats[s:s + m]
            self._first_block(a, part, bufs[0]["pooled"])
            net._blocks(None, bufs, alone=True, first=1)
        out[...] = softmax(net._dense([v[:g] for v in a["xs"]]))

    def _run(self, x: np.ndarray, out: np.ndarray, claims, group: int) -> None:
        """Groups of x, taken in turn from ``claims`` (shared by the threads), into out."""
        arrays = self._arrays()
        try:
            for i in claims:
                start = i * group
                if start >= len(x):
                    break
                self._group(arrays, x[start:start + group], out[start:start + group])
        finally:
            with self._free_lock:
                self._free.append(arrays)

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) of float input (N, 28, 28)."""
        net = self.net
        out = np.empty((len(x), net.dense[-1][0].params["W"].shape[1]), net.dtype)
        if not len(x):
            return out
        claims = itertools.count()  # the next group's index; next() is atomic
        chunks = -(-len(x) // self.chunk)
        group = min(self.group, self.chunk * -(-chunks // 2))  # at least two groups if it can
        with one_blas_thread(net.mnk * min(len(x), self.chunk)):
            if not _STATE["enabled"] or chunks < 2:
                self._run(x, out, claims, group)
                return out
            other = _pool().submit(self._run, x, out, claims, group)
            try:
                self._run(x, out, claims, group)
            finally:
                other.result()
        return out
