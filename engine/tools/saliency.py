"""Saliency: how much each input pixel moves a chosen class score (Simonyan et al., 2013).

The gradient comes from the layers' own backward pass: a forward pass, then ``dL/dt`` replaced
by the derivative of the chosen score with respect to the logits, then ``Model.backward``.
The model's weights are never changed and its weight gradients are restored afterwards, so a
viewer may call this on its private copy of a model at any time.
"""
from __future__ import annotations

import numpy as np

from convscope.engine.net.layers import softmax
from convscope.engine.net.model import Model


def saliency(model: Model, x: np.ndarray, class_index: int, score: str = "logit") -> np.ndarray:
    """d score / d x for one input or a batch.

    x: network input (28, 28) or (N, 28, 28), float (``prepare_input`` scale).
    class_index: 0..classes-1, the class whose score is differentiated.
    score: "logit" (the class's logit t_c, the usual saliency) or "prob" (softmax out_c).
    Returns the gradient, same shape as x, in the model's dtype.
    """
    if score not in ("logit", "prob"):
        raise ValueError(f"unknown score {score!r} (logit or prob)")
    c = int(class_index)
    if not 0 <= c < model.classes:
        raise ValueError(f"class_index must be between 0 and {model.classes - 1}, "
                         f"got {class_index}")
    single = np.ndim(x) == 2
    xb = np.asarray(x, dtype=model.dtype)
    xb = xb[None] if single else xb  # (N, 28, 28)
    saved = {k: v.copy() for k, v in model.grads().items()}
    first = model.layers[0]
    need_dx = getattr(first, "need_dx", True)
    first.need_dx = True  # the first conv normally skips dL/dinput; here it is the point
    try:
        t = model.forward(xb)  # (N, 10)
        dt = np.zeros_like(t)
        if score == "logit":
            dt[:, c] = 1.0  # d t_c / d t
        else:
            p = softmax(t)
            dt[...] = -p[:, c:c + 1] * p  # d out_c / d t_k = out_c (onehot_k - out_k)
            dt[:, c] += p[:, c]
        d = dt
        for layer in reversed(model.layers):
            d = layer.backward(d)
    finally:
        first.need_dx = need_dx
        for layer in model.layers:  # leave the weight gradients as they were
            for k in list(layer.grads):
                key = f"{layer.name}.{k}"
                if key in saved:
                    layer.grads[k] = saved[key]
                else:
                    del layer.grads[k]
    d = d.reshape(xb.shape)  # (N, 28, 28)
    return d[0] if single else d
