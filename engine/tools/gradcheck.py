"""Numeric gradient check: centred differences in float64 against the analytic backward pass.

For each checked weight entry w, the loss L (mean cross-entropy of the batch) is evaluated on
a float64 copy of the model at w +- h (and w +- 2h), and the slope is the centred difference
(L(w+h) - L(w-h)) / 2h, or by default its fourth-order form (8 (L(w+h) - L(w-h)) -
(L(w+2h) - L(w-2h))) / 12h. The error of an entry is CS231n's relative error
|a - n| / max(1e-8, |a| + |n|); each parameter reports its largest, each layer the largest of
its parameters, and the check passes when the overall largest is below ``threshold`` (1e-6;
a correct backward pass measures ~1e-8, a bug 1e-3 and above).

Precision. Float64 round-off limits a finite difference to about 1e-16 * |L| / h, which for a
small gradient is a large relative error. Three things keep it far below the threshold:
- the loss change is computed from the change of the logits (``loss_change``) instead of
  subtracting two losses near ln 10, whose last bit alone is 4e-16;
- the step of a weight is ``eps`` divided by the largest |input| it multiplies (per input
  unit of a dense layer, per input channel of a conv layer), so every step moves the layer's
  output by about ``eps``: weights fed by tiny inputs (and with tiny gradients) are measured
  as precisely as the others;
- the fourth-order form allows a larger step for the same truncation error.

Kinks. Max/min pooling and ReLU are not differentiable where two pooled values tie or a ReLU
input is exactly 0; a difference straddling such a point measures a mix of two slopes. Digits
have a constant background, so their maps are full of exact ties, and a tie that a weight
change pulls apart gives a wrong slope for any h. So the check keeps its inputs off the kinks:
1. the input is jittered by uniform noise of +-``jitter`` (default 0.01, a few grey levels;
   seeded; of ``tries`` draws the one with the largest ``kink_margin`` is kept), and biases
   still exactly 0 (their initial value) are set to +-jitter/2..jitter: no exact tie is left
   that a weight change could split, and no ReLU input is exactly 0 (an all-zero patch of
   dead units would otherwise give a ReLU input equal to a zero bias);
2. every difference is watched: if a perturbed pass picks another pool winner or flips a
   ReLU anywhere, the entry is redone with a step four times smaller (up to SHRINKS times).
   Such entries are counted in ``"kinks_avoided"``; entries that still cross a kink at the
   smallest step in ``"kinks"`` (they stay in the check, so a real bug is never hidden).

Large parameters are sampled: at most ``max_entries`` random entries each (None checks all).
``affordable_entries`` says how many a check can afford: every entry while the estimated cost
stays within ``CHECK_BUDGET`` multiply-adds (a few seconds), which covers the seed network
(13,602 weights, about half a second for one sample) and the deep one (9,098); lenet (215,370,
most of a minute for all) is sampled.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from convscope.engine.files.limits import INPUT_SHAPE
from convscope.engine.net.layers import softmax
from convscope.engine.net.model import Model, prepare_input

SHRINKS = 8  # a step that crosses a kink is divided by 4, at most this many times
CHECK_BUDGET = 2e10  # multiply-adds a check may cost and still check every entry
LAYER_COST = 30_000  # the overhead of one layer call, in multiply-adds of the same time


def relative_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CS231n relative error, element by element: |a - b| / max(1e-8, |a| + |b|)."""
    return np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))


def loss_change(t_from: np.ndarray, t_to: np.ndarray, labels: np.ndarray) -> float:
    """L(t_to) - L(t_from) for logits (N, 10), L the mean cross-entropy, from the small
    difference d = t_to - t_from: per sample log(sum_k p_k e^d_k) - d_label with
    p = softmax(t_from), computed as log1p(sum_k p_k expm1(d_k)) - d_label."""
    d = t_to - t_from
    p = softmax(t_from)
    rows = np.arange(len(labels))
    return float(np.mean(np.log1p((p * np.expm1(d)).sum(axis=1)) - d[rows, labels]))


def kink_margin(model: Model, x: np.ndarray) -> float:
    """How far inputs x (N, 28, 28) float are from a kink of ``model``: the smallest |input| of
    any ReLU and the smallest gap between winner and runner-up of any max/min pool window.
    Exact ties are left out: they come from identical (all-zero) patches, and weight changes
    move such values together, so the winner never changes."""
    margin, a = np.inf, x
    for layer in model.layers:
        if layer.kind == "relu":
            margin = min(margin, float(np.abs(a).min()))
        elif layer.kind == "pool" and layer.mode != "avg":
            k, s = layer.size, layer.stride
            win = np.lib.stride_tricks.sliding_window_view(a, (k, k), axis=(1, 2))[:, ::s, ::s]
            win = np.sort(win.reshape(*win.shape[:4], k * k), axis=-1)  # (N, Ho, Wo, C, k*k)
            gap = win[..., -1] - win[..., -2] if layer.mode == "max" else win[..., 1] - win[..., 0]
            if np.any(gap > 0):
                margin = min(margin, float(gap[gap > 0].min()))
        a = layer.forward(a)
    return margin


def entry_costs(model: Model) -> dict:
    """{parameter name: (entries, multiply-adds to check one entry of one sample)}: an entry
    of a weight of layer i runs layers[i:] four times (the fourth-order difference)."""
    shape, costs = (*INPUT_SHAPE, 1), []
    for layer in model.layers:
        out = layer.out_shape(shape)
        costs.append(_layer_macs(layer, shape, out) + LAYER_COST)
        shape = out
    tail = np.cumsum(costs[::-1])[::-1]  # (layers,) cost of layers[i:]
    return {f"{layer.name}.{key}": (int(w.size), 4 * float(tail[i]))
            for i, layer in enumerate(model.layers) for key, w in layer.params.items()}


def _layer_macs(layer, in_shape: tuple, out_shape: tuple) -> int:
    """Multiply-adds of one sample through ``layer`` (one per input value if it has none)."""
    if layer.kind == "conv":
        return out_shape[0] * out_shape[1] * layer.params["W"].size
    if layer.kind == "dense":
        return layer.params["W"].size
    return int(np.prod(in_shape))


def check_cost(model: Model, max_entries: int | None = None, samples: int = 1) -> float:
    """Estimated multiply-adds of a check with at most ``max_entries`` per parameter."""
    cap = np.inf if max_entries is None else max_entries
    return samples * sum(min(cap, n) * c for n, c in entry_costs(model).values())


def affordable_entries(model: Model, budget: float = CHECK_BUDGET,
                       samples: int = 1) -> int | None:
    """None when checking every entry of ``model`` fits ``budget`` multiply-adds, else the
    largest round number of entries per parameter that does (at least 10)."""
    if check_cost(model, None, samples) <= budget:
        return None
    lo, hi = 10, max(n for n, _ in entry_costs(model).values())
    while lo < hi:  # the largest cap within the budget
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if check_cost(model, mid, samples) <= budget else (lo, mid - 1)
    step = 10 ** max(0, len(str(lo)) - 2)
    return lo - lo % step  # 1137 -> 1100


def _prepare(x, labels):
    """uint8 images or float inputs, (28, 28) or (N, 28, 28) -> float64 (N, 28, 28), (N,)."""
    x = np.asarray(x)
    x = prepare_input(x) if x.dtype == np.uint8 else x
    x = np.array(x, dtype=np.float64, ndmin=3)
    labels = np.atleast_1d(np.asarray(labels, dtype=np.intp))
    if len(labels) != len(x):
        raise ValueError(f"{len(x)} inputs but {len(labels)} labels")
    return x, labels


def _run(model: Model, start: int, a: np.ndarray):
    """layers[start:] on their input ``a`` -> (logits (N, 10), kink state: ReLU signs and
    pool winner masks, in layer order)."""
    state = []
    for layer in model.layers[start:]:
        if layer.kind == "relu":
            state.append(a > 0)
        a = layer.forward(a)
        if layer.kind == "pool" and layer.mode != "avg":
            state.append(layer.mask())
    return a, state


def _input_scale(layer, key: str, a: np.ndarray):
    """Largest |input| each weight entry multiplies, broadcastable to the weight's shape:
    per input unit of dense W (n_in, 1), per input channel of conv W (C_in, 1); 1 for biases."""
    if key != "W" or layer.kind not in ("dense", "conv"):
        return 1.0
    n_in = layer.params["W"].shape[0 if layer.kind == "dense" else 2]
    return np.clip(np.abs(a.reshape(-1, n_in)).max(axis=0)[:, None], 1e-6, None)


def _slope(model, index, w, e, h, order, base, a, labels):
    """Centred-difference slope of the loss along ``w[e]``, an entry of a weight of layer
    ``index`` whose input is ``a`` -> (slope, number of steps that crossed a kink)."""
    old = w[e]
    multiples = (1, -1) if order == 2 else (1, -1, 2, -2)
    for attempt in range(SHRINKS + 1):
        logits, clean = [], True
        for m in multiples:
            w[e] = old + m * h
            t, state = _run(model, index, a)
            logits.append(t)
            clean = clean and all(np.array_equal(s, b) for s, b in zip(state, base, strict=True))
        w[e] = old
        slope = loss_change(logits[1], logits[0], labels) / (2 * h)
        if order == 4:
            slope = (4 * slope - loss_change(logits[3], logits[2], labels) / (4 * h)) / 3
        if clean:
            return slope, attempt
        h /= 4
    return slope, SHRINKS + 1


def _entries(size: int, max_entries: int | None, rng) -> np.ndarray:
    """The flat indices to check of a parameter of ``size`` entries: all, or a sorted random
    ``max_entries`` of them."""
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, max_entries, replace=False))


def gradcheck(model_or_config, x, labels, *, seed: int = 0, eps: float = 1e-4,
              order: int = 4, threshold: float = 1e-6, max_entries: int | None = 100,
              jitter: float = 0.01, tries: int = 8,
              grad_hook: Callable[[dict], dict] | None = None,
              should_stop: Callable[[], bool] | None = None,
              progress: Callable[[int, int], None] | None = None) -> dict:
    """Check the analytic gradients of ``model_or_config`` on inputs ``x`` with ``labels``.

    model_or_config: a Model (checked on a float64 copy; the original is not touched) or a
        config from ``build_config`` (built with ``seed``, in float64).
    x: uint8 images (N, 28, 28) or (28, 28), or float network inputs; labels (N,) or an int.
    eps: step, relative to the inputs a weight multiplies; order: 2 or 4 (see the module).
    max_entries: entries checked per parameter (a seeded random subset); None checks all.
    jitter: input noise keeping off the kinks (0 checks the exact input, ties and all);
        tries: jittered inputs drawn, the one farthest from any kink is kept.
    grad_hook: optional function given the analytic gradients {"conv1.W": array, ...}
        (copies) and returning the gradients to check, e.g. to inject a bug in tests.
    should_stop: optional function asked before each entry; True raises InterruptedError
        (an app closing in the middle of a long check).
    progress: optional function called after each entry with (entries done, entries in all).

    Returns plain data: {"passed", "max_rel_error", "threshold", "layers": {layer name:
    max_rel_error}, "params": {name: {"max_rel_error", "checked", "size", "worst_index",
    "analytic", "numeric"}}, "kinks_avoided", "kinks", "kink_margin" (None without kinks), "loss",
    "samples", "eps", "order", "jitter"}.
    """
    if order not in (2, 4):
        raise ValueError(f"order must be 2 or 4, not {order!r}")
    rng = np.random.default_rng(seed)
    if isinstance(model_or_config, Model):
        model = model_or_config.copy(dtype=np.float64)
    else:
        model = Model(model_or_config, seed, dtype=np.float64)
    x, labels = _prepare(x, labels)
    if jitter:
        for b in (layer.params.get("b") for layer in model.layers):
            if b is not None:
                zero = b == 0
                size = int(zero.sum())
                b[zero] = rng.choice([-1.0, 1.0], size) * rng.uniform(jitter / 2, jitter, size)
        draws = [x + rng.uniform(-jitter, jitter, x.shape) for _ in range(max(tries, 1))]
        x = max(draws, key=lambda d: kink_margin(model, d))

    losses, _ = model.loss_and_grads(x, labels)
    analytic = {k: g.copy() for k, g in model.grads().items()}
    if grad_hook is not None:
        analytic = {k: np.asarray(v, dtype=np.float64) for k, v in grad_hook(analytic).items()}

    inputs, kinks_from, state = [], [], []  # each layer's input, where its kink states begin
    a = x
    for layer in model.layers:
        inputs.append(a)
        kinks_from.append(len(state))
        if layer.kind == "relu":
            state.append(a > 0)
        a = layer.forward(a)
        if layer.kind == "pool" and layer.mode != "avg":
            state.append(layer.mask())

    report = {"params": {}, "layers": {}, "kinks_avoided": 0, "kinks": 0}
    plan = {f"{layer.name}.{key}": _entries(w.size, max_entries, rng)
            for layer in model.layers for key, w in layer.params.items()}
    done, total = 0, sum(len(e) for e in plan.values())
    for index, layer in enumerate(model.layers):
        for key, w in layer.params.items():
            name = f"{layer.name}.{key}"
            entries = plan[name]
            steps = np.broadcast_to(eps / _input_scale(layer, key, inputs[index]), w.shape)
            numeric = np.empty(len(entries))
            for n, e in enumerate(entries):
                if should_stop is not None and should_stop():
                    raise InterruptedError("the gradient check was stopped")
                at = np.unravel_index(e, w.shape)  # writing w[at] perturbs the live weight
                numeric[n], crossed = _slope(model, index, w, at, steps[at], order,
                                             state[kinks_from[index]:], inputs[index], labels)
                report["kinks_avoided"] += 0 < crossed <= SHRINKS
                report["kinks"] += crossed > SHRINKS
                if progress is not None:
                    progress(done + n + 1, total)
            done += len(entries)
            checked = analytic[name].reshape(-1)[entries]
            errors = relative_error(checked, numeric)
            worst = int(np.argmax(errors))
            report["params"][name] = {
                "max_rel_error": float(errors[worst]), "checked": len(entries),
                "size": int(w.size),
                "worst_index": [int(i) for i in np.unravel_index(entries[worst], w.shape)],
                "analytic": float(checked[worst]), "numeric": float(numeric[worst])}
            report["layers"][layer.name] = max(report["layers"].get(layer.name, 0.0),
                                               float(errors[worst]))
    worst_error = max(report["layers"].values(), default=0.0)
    margin = kink_margin(model, x)
    report.update(passed=bool(worst_error < threshold), max_rel_error=worst_error,
                  threshold=threshold, kink_margin=margin if np.isfinite(margin) else None,
                  loss=float(losses.mean()), samples=len(x), eps=eps, order=order,
                  jitter=jitter)
    return report
