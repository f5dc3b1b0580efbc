"""Two threads for the conv-stack pass (engine/fast/stack.py): a batch in two halves, or
the largest products of a small batch in two.

A batch of SPLIT_MIN or more (whose largest product has SPLIT_MNK multiply-adds or more)
runs as two whole passes, one per half, side by side: this thread and one helper thread,
each on its own work arrays and gradient (``whole_halves``), then the two mean gradients
are averaged. One hand-over a step, and the gathers, pooling and adds, not only the
products, run on both cores: `deep` and `lenet` at batch 32 trained 20-25% faster than with
the products split.

OpenBLAS runs each product of the pass on one thread (one_blas_thread): its own second
thread spin-waits for a core, and when the other core was busy a step ran 3-30x slower. Here
the pass hands half of each large product to one helper thread of its own instead, which
sleeps (no spinning) until there is work: this thread computes one half, the helper the
other, each with one BLAS thread. NumPy lets go of the interpreter lock inside BLAS and large
element-wise loops, so the halves run side by side on two cores.

Each half is the same arithmetic on its own rows: results are identical, except the weight
gradient, a sum over rows, which adds two partial sums (rounding differs in the last bits).
PAIR_MNK: products smaller than this many multiply-adds stay on one thread (the hand-over
costs 20-200 us). ``enabled`` switches the helper off (``use_pair(False)``).

The thresholds, from passes timed one call at a time in turn (one thread, products split,
halves; 150 calls each): products split only paid above about 24 million multiply-adds
(lenet 32 filters at batch 4: 1.09x; lenet 16 filters at batch 4: 0.92x, at batch 6: 0.92x);
halves paid from about 7 million at batches of 8 or more (`deep` 8 filters at batch 32:
1.04-1.23x, 16 filters at batch 16: 1.07x; lenet 16 filters at batch 4: 0.80x).
"""
from __future__ import annotations

import contextlib
import copy
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from convscope.engine.fast.kernels import ONE_THREAD_MNK

PAIR_MNK = 24_000_000  # the smallest product split between the two threads
SPLIT_MNK = 7_000_000  # the smallest largest product of a batch split into two half-passes
SPLIT_MIN = 8  # the smallest batch split into two whole half-passes
_STATE = {"enabled": True, "pool": None, "helper": None}
_LOCK = threading.Lock()
_SPLIT = threading.local()  # .on: this thread is running one half of a split batch


def use_pair(on: bool) -> bool:
    """Let the pass use its helper thread (True, the default) or keep to one thread; returns
    the setting it replaces."""
    was, _STATE["enabled"] = _STATE["enabled"], bool(on)
    return was


def _pool():
    with _LOCK:
        if _STATE["pool"] is None:
            _STATE["pool"] = ThreadPoolExecutor(1, thread_name_prefix="convscope-pair",
                                                initializer=_name_helper)
        return _STATE["pool"]


def _name_helper() -> None:
    _STATE["helper"] = threading.current_thread()


def _off_helper() -> bool:  # the helper never hands work to itself: it would wait on its queue
    return threading.current_thread() is not _STATE["helper"]


def paired(mnk: int) -> bool:
    """Hand half of this work to the helper?"""
    return (_STATE["enabled"] and not getattr(_SPLIT, "on", False) and mnk >= PAIR_MNK
            and _off_helper())


def split_worth(mnk: int, n: int) -> bool:
    """Whether a batch of ``n`` runs as two whole half-passes (``whole_halves``)."""
    return _STATE["enabled"] and n >= SPLIT_MIN and mnk >= SPLIT_MNK and _off_helper()


def whole_halves(net, xp, labels, smoothing):
    """``net._loss_and_grads`` (a StackNet's pass) over the first half of the batch on this
    thread and over the second half on the helper, with the net's twin: the same weights,
    work arrays and a gradient of its own. The two mean gradients are averaged into
    ``net.flat_g``, weighted by the halves' sizes; meanwhile no product is handed over."""
    n, h = len(labels), len(labels) // 2
    twin = _twin(net)
    g, g_b = net.flat_g, twin.flat_g
    _SPLIT.on = True
    try:
        other = _pool().submit(_with_errstate, np.geterr(), _weighted, twin, xp[h:],
                               labels[h:], smoothing, (n - h) / n)
        losses, probs = _weighted(net, xp[:h], labels[:h], smoothing, h / n)
        losses_b, probs_b = other.result()
    finally:
        _SPLIT.on = False
    g += g_b  # each half's mean gradient was weighted by its share of the batch
    return np.concatenate([losses, losses_b]), np.concatenate([probs, probs_b])


def _weighted(net, xp, labels, smoothing, share: float):
    """``net._loss_and_grads`` over its part of the batch, its gradient times ``share``."""
    out = net._loss_and_grads(xp, labels, smoothing)
    net.flat_g *= net.flat_g.dtype.type(share)
    return out


def _with_errstate(err: dict, fn, *args):
    """fn(*args) under the caller's floating-point error handling (np.errstate is per
    thread)."""
    with np.errstate(**err):
        return fn(*args)


def _twin(net):
    """A shallow copy of ``net`` sharing its weights, with work arrays and a flat gradient of
    its own (every gradient view moved to the same place in it), made once."""
    twin = net.__dict__.get("twin")
    if twin is None:
        twin = net.twin = copy.copy(net)
        twin._bufs = {}
        twin.flat_g = np.zeros_like(net.flat_g)
        base = net.flat_g.__array_interface__["data"][0]

        def moved(view):
            at = (view.__array_interface__["data"][0] - base) // view.itemsize
            return twin.flat_g[at:at + view.size].reshape(view.shape)
        twin.slots = {key: (w, moved(g)) for key, (w, g) in net.slots.items()}
        twin.mats = {key: (w, moved(g)) for key, (w, g) in net.mats.items()}
    return twin


def dot(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out (M, N) = a (M, K) @ b (K, N), rows split between two threads when large."""
    m = len(a)
    if not paired(m * a.shape[1] * b.shape[1]) or m < 2:
        return np.dot(a, b, out)
    h = m // 2
    other = _pool().submit(np.dot, a[h:], b, out[h:])
    np.dot(a[:h], b, out[:h])
    other.result()
    return out


def dot_tn(a: np.ndarray, b: np.ndarray, out: np.ndarray, spare: np.ndarray) -> np.ndarray:
    """out (N, K) = a (M, N)^T @ b (M, K): two half sums, the helper's into ``spare``
    (shaped as out), then added."""
    m = len(a)
    if not paired(m * a.shape[1] * b.shape[1]) or m < 2:
        return np.dot(a.T, b, out)
    h = m // 2
    other = _pool().submit(np.dot, a[h:].T, b[h:], spare)
    np.dot(a[:h].T, b[:h], out)
    other.result()
    out += spare
    return out


def matmul(a: np.ndarray, w: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out (G, M, N) = a (1, M, K) @ w (G, K, N), the G products split between two threads."""
    g = len(w)
    if not paired(g * a.shape[1] * a.shape[2] * w.shape[2]) or g < 2:
        return np.matmul(a, w, out=out)
    h = g // 2
    other = _pool().submit(np.matmul, a, w[h:], out=out[h:])
    np.matmul(a, w[:h], out=out[:h])
    other.result()
    return out


def halves(fn, n: int, work: int) -> None:
    """fn(start, stop) over [0, n) in two halves on two threads when ``work`` (multiply-adds or
    values touched) is large, else fn(0, n)."""
    if not paired(work) or n < 2:
        fn(0, n)
        return
    h = n // 2
    other = _pool().submit(fn, h, n)
    fn(0, h)
    other.result()


_CONTROLLER = []  # threadpoolctl's ThreadpoolController, made on first use


def one_blas_thread(mnk: int):
    """A context keeping OpenBLAS on one thread for products of up to ``mnk`` multiply-adds.
    Above M*N*K = 524,288 OpenBLAS starts a second thread; when the other core is busy (the
    app's GUI, other programs) each product then waits for it: a lenet step at batch 32 ran
    3-30x slower than on one thread. Cutting products into row blocks small enough for one
    thread (engine/fast/kernels.py) is 3x slower for these wide patches, so the thread count
    is set instead (threadpoolctl) for the pass, and put back after it."""
    if mnk < ONE_THREAD_MNK:
        return contextlib.nullcontext()
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
            _CONTROLLER.append(ThreadpoolController())
        except ImportError:  # then OpenBLAS decides
            _CONTROLLER.append(None)
    ctl = _CONTROLLER[0]
    return contextlib.nullcontext() if ctl is None else ctl.limit(limits=1, user_api="blas")
