"""The NumPy building blocks of the layers: work buffers, matrix products kept on one BLAS
thread, column sums, and the pooling winner mask.

The layers are tiny matrix products, so memory traffic and the number of NumPy calls decide
the time, not arithmetic. Everything here exists because of a measurement on this kind of
machine (2 cores, float32, the design notes' network); see bench/README.md.
"""
from __future__ import annotations

import math
import sys

import numpy as np

BUFFER_MIN_BYTES = 16384  # smaller arrays come from malloc's free lists, faster than a lookup
# OpenBLAS runs a product M x K @ K x N on several threads once M*N*K reaches 2 * 65536 * 4.
# For these thin products that gains little on an idle machine and costs milliseconds per call
# when the other core is busy (the app's GUI thread, other programs): the threads wait for
# each other's time slices. Products are cut into row blocks below that size instead.
ONE_THREAD_MNK = 2 * 65536 * 4


def _refcount(a) -> int:
    return sys.getrefcount(a)


def _free_refcount() -> int:
    """References to a slot array that nobody else holds, counted exactly as Buffers.get does.
    -1 (never reuse) if an extra holder would not show in the count on this interpreter."""
    slots = [np.empty(1)]
    for buf in slots:
        free = _refcount(buf)
    holder = slots[0]
    for buf in slots:
        held = _refcount(buf)
    del holder
    return free if held > free else -1


_FREE = _free_refcount()


class Buffers:
    """Work arrays reused from one call to the next, so a training step allocates (almost)
    nothing. Temporaries of a few hundred kB allocated and freed on every step make glibc hand
    their memory back to the system and fault it in again on the next step (by mmap or by
    trimming the heap, depending on what the process did before, e.g. loading a dataset);
    at batch 32 that made the pooling backward pass three times slower.

    ``get(role, shape, dtype)`` returns a C-contiguous array of that shape whose contents are
    garbage (or zeros with ``zero=True``, kept zero by callers that only write the interior).
    A buffer is handed out again only when nothing else refers to it or to a view of it: a
    caller still holding an earlier result keeps it, and another array is used. At most two
    arrays per role (the last two shapes asked for).
    """

    def __init__(self):
        self._slots: dict = {}

    def get(self, role, shape: tuple, dtype: np.dtype, zero: bool = False) -> np.ndarray:
        """An array of ``shape`` (a tuple) and ``dtype`` (a np.dtype) for ``role``."""
        if not zero and math.prod(shape) * dtype.itemsize < BUFFER_MIN_BYTES:
            return np.empty(shape, dtype)
        slots = self._slots.get(role)
        if slots is None:
            slots = self._slots[role] = []
        for buf in slots:
            if buf.shape == shape and buf.dtype == dtype and _refcount(buf) <= _FREE:
                return buf
        new = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
        slots.append(new)
        if len(slots) > 2:  # forget one (whoever still holds it keeps it alive)
            del slots[0]
        return new


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = a @ b for a (M, K), b (K, N), out (M, N) C-contiguous of the result's dtype, in
    row blocks of one BLAS thread each."""
    m, k = a.shape
    n = b.shape[1]
    if m * k * n < ONE_THREAD_MNK:
        return np.dot(a, b, out=out)
    rows = max(1, (ONE_THREAD_MNK - 1) // (k * n))
    for i in range(0, m, rows):
        np.dot(a[i:i + rows], b, out=out[i:i + rows])
    return out


def matmul_tn(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a.T @ b for a (M, K), b (M, N) -> (K, N): a sum over row blocks of one BLAS thread."""
    m, k = a.shape
    n = b.shape[1]
    if m * k * n < ONE_THREAD_MNK:
        return np.dot(a.T, b, out=out)
    rows = max(1, (ONE_THREAD_MNK - 1) // (k * n))
    total = np.dot(a[:rows].T, b[:rows], out=out)
    for i in range(rows, m, rows):
        total += np.dot(a[i:i + rows].T, b[i:i + rows])
    return total


def column_sums(a: np.ndarray) -> np.ndarray:
    """a (M, C) -> (C,): sum over the rows as a product with ones (summing along axis 0 of a
    tall, narrow array makes NumPy loop over M rows of C values, about 25x slower)."""
    key = (a.shape[0], a.dtype)
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) > 8:
            _ONES.clear()
        ones = _ONES[key] = np.ones((a.shape[0], 1), a.dtype)
    return matmul_tn(ones, a)[0]


_ONES: dict = {}


def spread(a: np.ndarray, k: int, out: np.ndarray | None = None) -> np.ndarray:
    """Each pixel of ``a`` (N, Ho, Wo, C) repeated k times along the width: (N, Ho, Wo*k, C),
    a.repeat(k, axis=2) written into ``out`` (one gather of whole pixels)."""
    n, ho, wo, c = a.shape
    index = _SPREAD.get((n * ho * wo, k))
    if index is None:
        if len(_SPREAD) > 8:
            _SPREAD.clear()
        index = _SPREAD[(n * ho * wo, k)] = np.arange(n * ho * wo).repeat(k)
    if out is None:
        out = np.empty((n, ho, wo * k, c), a.dtype)
    a.reshape(n * ho * wo, c).take(index, axis=0, mode="wrap", out=out.reshape(-1, c))
    return out


_SPREAD: dict = {}


def packed(mask: np.ndarray) -> np.ndarray:
    """A boolean array read as the widest unsigned integers that divide its last axis: the
    0/1 bytes of 8 channels are one uint64, so one integer operation handles them all."""
    c = mask.shape[-1]
    unit = 8 if c % 8 == 0 else 4 if c % 4 == 0 else 2 if c % 2 == 0 else 1
    return mask.view(_UINTS[unit])


def claim_first(offsets: list, spare: tuple | None = None) -> None:
    """Keep only the first claim: ``offsets`` are the packed "equals its window's pooled
    value" masks (``packed``), one same-shaped view per window offset in row-major order. Each
    is rewritten in place to what no earlier offset claimed: mine & ~claimed, computed as
    (claimed | mine) ^ claimed. ``spare``: two work arrays of that shape (made if None)."""
    claimed = offsets[0]
    if spare is None:
        spare = (np.empty(claimed.shape, claimed.dtype), np.empty(claimed.shape, claimed.dtype))
    for o in range(1, len(offsets)):
        mine, now = offsets[o], spare[o % 2]
        np.bitwise_or(claimed, mine, out=now)  # claimed by this offset or an earlier one
        np.bitwise_xor(now, claimed, out=mine)  # ... and not by an earlier one
        claimed = now


def first_winners(x, out, k, eq=None, up=None) -> np.ndarray:
    """Boolean (N, H, W, C) mask of the first position (row-major) in each k x k window of
    ``x`` that equals the window's pooled value ``out`` (N, H/k, W/k, C); windows tile ``x``.
    Every position equal to its window's value is marked first (one comparison over
    contiguous rows), then ``claim_first`` clears the later ties."""
    n, h, w, c = x.shape
    ho = out.shape[1]
    if eq is None:
        eq = np.empty((n, h, w, c), dtype=bool)
    up = spread(out, k, up)  # (N, Ho, W, C): each value under its window's columns
    np.equal(x.reshape(n, ho, k, w, c), up[:, :, None], out=eq.reshape(n, ho, k, w, c))
    bits = packed(eq)  # (N, H, W, C // unit)
    claim_first([bits[:, i::k, j::k] for i in range(k) for j in range(k)])
    return eq


_UINTS = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 4: np.dtype(np.uint32),
          8: np.dtype(np.uint64)}


def winner_offsets(mask: np.ndarray, k: int) -> np.ndarray:
    """Winner offset i * k + j inside each window, (N, H/k, W/k, C) int8, from a winner mask."""
    arg = np.zeros(mask[:, ::k, ::k].shape, dtype=np.int8)
    for o in range(1, k * k):
        i, j = divmod(o, k)
        np.copyto(arg, o, where=mask[:, i::k, j::k])
    return arg
