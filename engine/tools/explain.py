"""The arithmetic behind any number of one traced step, as plain data.

A trace comes from ``Model.loss_and_grads(x, labels, trace)`` (``Trainer.step(trace=...)``
fills one). The weights must be the ones that forward pass used: the trainer changes them right
after, so keep a copy (``traced_step`` does) and pass it as ``params``.

``explain(model, trace, key, index, params=...) -> Explanation`` where ``key`` is a trace key and
``index`` the cell without the batch axis, for example::

    "conv1", (i, j, f)        conv output = sum of its 3x3 region * filter f (nine products)
    "pool1", (i, j, c)        pooled value: the four candidates, the winner, ties
    "flatten", (r,)           which pooled cell the r-th input of the dense layer is
    "logits", (k,)            t[k] = sum over r of x[r] * W[r, k] + b[k]
    "probs", (k,)             out[k] = exp(t[k]) / S, from all the exponentials
    "loss", ()                -log(out[label])
    "dL_dout" / "dout_dt" / "dL_dt", (k,)   the notes' softmax backward
    "dense1.dW", (r, k)       x[r] * dL/dt[k];  "dense1.db", (k,);  "dense1.dx", (r,)
    "pool1.dx", (i, j, c)     the pool-routed gradient: non-zero only at a window's winner
    "conv1.dW", (di, dj, c, f)  sum over every region of region value * dL/dout

``explain_update`` shows one weight before and after ``w -= lr * grad``.
Values are recomputed here in float64; ``stored`` is what the trace (float32) holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convscope.engine.net import names
from convscope.engine.tools import explain_backward as back
from convscope.engine.tools import explain_forward as fwd
from convscope.engine.tools.explain_text import SHOWN_TERMS, Explanation, Grids, fmt, wrap

__all__ = ["SHOWN_TERMS", "Explanation", "Grids", "StepTrace", "explain", "explain_update",
           "fmt", "traced_step", "wrap"]

# a layer kind -> the explainer of its output cells, and of its gradient cells
FORWARD = {"conv": fwd.conv, "pool": fwd.pool, "relu": fwd.relu, "flatten": fwd.flatten,
           "dense": fwd.dense}
BACKWARD = {"conv": back.conv_grad, "pool": back.pool_grad, "relu": back.relu_grad,
            "flatten": back.flatten_grad, "dense": back.dense_grad}


@dataclass(frozen=True)
class StepTrace:
    """One single-sample (or batch) step, as the inspector shows it (copies only)."""
    step: int  # the step number after this step
    loss: float
    trace: dict = field(repr=False)
    params_before: dict = field(repr=False)  # the weights the forward pass used
    params_after: dict = field(repr=False)
    lr: float = 0.0
    momentum: float = 0.0
    config: dict = field(default_factory=dict, repr=False)


def traced_step(trainer, batch_size: int = 1) -> StepTrace:
    """Run ``trainer.step(batch_size, trace)`` keeping the weights before and after."""
    before = {k: v.copy() for k, v in trainer.model.params().items()}
    trace: dict = {}
    lr, momentum = trainer.lr, trainer.momentum
    report = trainer.step(batch_size, trace=trace)
    after = {k: v.copy() for k, v in trainer.model.params().items()}
    return StepTrace(report.step, report.loss, trace, before, after, lr, momentum,
                     dict(trainer.model.config))


def explain(model, trace: dict, key: str, index=(), n: int = 0,
            params: dict | None = None) -> Explanation:
    """The arithmetic of ``trace[key][n, *index]`` (weight gradients have no batch axis)."""
    params = model.params() if params is None else params
    index = tuple(int(i) for i in np.atleast_1d(index)) if index != () else ()
    if key == names.LOGITS:
        key = model.layers[-1].name
    if key == names.PROBS:
        return fwd.probs(model, trace, key, index, n, params)
    if key == names.LOSS:
        return fwd.loss(model, trace, key, index, n, params)
    if key in (names.DL_DOUT, names.DOUT_DT, names.DL_DT):
        return back.softmax_grad(model, trace, key, index, n, params)
    name, _, what = key.partition(".")
    kind = model.layer(name).kind
    table = BACKWARD if what else FORWARD
    if kind not in table or (kind == "pool" and what not in ("", "dx")):
        raise KeyError(f"no arithmetic for {key!r}")
    return table[kind](model, trace, key, index, n, params)


def explain_update(key: str, index, before: dict, after: dict, grad: np.ndarray, lr: float,
                   momentum: float = 0.0) -> Explanation:
    """One weight ``key`` ("conv1.W") at ``index`` before and after ``w -= lr * grad``."""
    index = tuple(int(i) for i in np.atleast_1d(index))
    w0, w1 = float(before[key][index]), float(after[key][index])
    g = float(grad[index])
    step = np.float32(lr) * np.float32(g)
    value = float(np.float32(w0) - step)
    lines = [f"before      w = {fmt(w0)}", f"gradient    dL/dw = {fmt(g)}",
             f"lr * grad   {fmt(lr)} * {fmt(g)} = {fmt(step)}",
             f"after       w - lr * grad = {fmt(w0)} - {fmt(step)} = {fmt(value)}",
             f"change      after - before = {fmt(w1 - w0)}"]
    notes = ()
    if momentum:
        notes = (f"momentum {momentum:g}: the step also carries the previous velocity, so the "
                 f"weight became {fmt(w1)}.",)
        value = w1
    return Explanation(f"update:{key}", index, f"update of {key}{list(index)}",
                       "w -= lr * dL/dw", tuple(lines), value, w1, (w0, g, float(lr)), notes)
