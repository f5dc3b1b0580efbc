"""Layer names and trace keys, defined once.

A config's layers are named by kind and count: conv1, relu1, pool1, conv2, ..., dense1; the
one flatten layer is plain ``flatten``. Weights are ``<layer>.<param>`` (``conv1.W``). A trace
(``Model.forward(x, trace)``) holds copies under the keys below and under each layer's name.
"""
from __future__ import annotations

INPUT, LOGITS, PROBS = "input", "logits", "probs"
LABELS, LOSS = "labels", "loss"
DL_DOUT, DOUT_DT, DL_DT = "dL_dout", "dout_dt", "dL_dt"


def layer_names(kinds: list[str]) -> list[str]:
    """["conv", "pool", "flatten", "dense"] -> ["conv1", "pool1", "flatten", "dense1"]."""
    counts: dict[str, int] = {}
    names = []
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
        names.append(kind if kind == "flatten" else f"{kind}{counts[kind]}")
    return names


def mask_key(name: str) -> str:  # the winner mask of a max or min pool layer: pool1.mask
    return f"{name}.mask"


def dx_key(name: str) -> str:  # dL/d(input) of a layer: conv2.dx
    return f"{name}.dx"


def grad_key(name: str, param: str) -> str:  # dL/d(weight): conv1.dW, dense1.db
    return f"{name}.d{param}"
