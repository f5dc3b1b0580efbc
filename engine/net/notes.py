"""Start here: the design notes' network, written as plain loops.

The first file to read. Every function follows the notes line by line, one sample and one
pixel at a time: 3x3 regions, a filter's output as the sum of ``region * filter``, a max per
region, a filter's gradient ``d_L_d_f += region * d_L_d_out[i, j, f]``, the notes' softmax and
cross-entropy gradients; extended (channels, stride, padding, avg/min pooling, ReLU, several
dense layers) to run every preset. Channels last: an image (H, W) or a map (H, W, C); conv
weights (k, k, C_in, C_out); dense weights (n_in, n_out), bias (n_out,). Float64, slow.

Then read ``layers.py`` (the same maths on whole batches), ``model.py`` (layers chained from a
config), ``optim.py`` (the weight update) and ``train.py`` (the loop). ``ReferenceNet`` uses the
model's weight names and trace keys, so tests hold the two equal number by number.
"""
from __future__ import annotations

import numpy as np

from convscope.engine.net.names import layer_names


def iterate_regions(image: np.ndarray, k: int, stride: int = 1):
    """Yield (region (k, k, C), i, j) for every output position (i, j), in row-major order."""
    h, w = image.shape[0], image.shape[1]
    for i in range((h - k) // stride + 1):
        for j in range((w - k) // stride + 1):
            yield image[i * stride:i * stride + k, j * stride:j * stride + k], i, j


def _as_map(image: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 1); (H, W, C) unchanged; always float64."""
    image = np.asarray(image, dtype=np.float64)
    return image[:, :, None] if image.ndim == 2 else image


def zero_pad(image: np.ndarray, pad: int) -> np.ndarray:
    """(H, W, C) -> (H + 2 pad, W + 2 pad, C) with zeros around."""
    h, w, c = image.shape
    out = np.zeros((h + 2 * pad, w + 2 * pad, c))
    out[pad:pad + h, pad:pad + w] = image
    return out


# ---- convolution ---------------------------------------------------------------------------
def conv_forward(image, weights, bias=None, stride=1, pad=0) -> np.ndarray:
    """image (H, W) or (H, W, C_in), weights (k, k, C_in, C_out) -> out (Ho, Wo, C_out).

    out[i, j, f] = sum(region @ (stride i, stride j) * weights[f]) (+ bias[f]).
    """
    x = zero_pad(_as_map(image), pad)
    k, _, _, n_filters = weights.shape
    ho, wo = (x.shape[0] - k) // stride + 1, (x.shape[1] - k) // stride + 1
    out = np.zeros((ho, wo, n_filters))
    for region, i, j in iterate_regions(x, k, stride):
        for f in range(n_filters):
            out[i, j, f] = np.sum(region * weights[:, :, :, f])
            if bias is not None:
                out[i, j, f] += bias[f]
    return out


def conv_backward(image, weights, d_L_d_out, stride=1, pad=0):
    """Gradients of one conv layer: (d_L_d_f (k, k, C_in, C_out), d_L_d_b (C_out,),
    d_L_d_input with the shape of ``image``).

    The notes: every output pixel's region trickles down, summed over all regions:
    ``d_L_d_f[f] += region * d_L_d_out[i, j, f]``; and each region's input pixels receive
    ``weights[f] * d_L_d_out[i, j, f]``.
    """
    image = np.asarray(image, dtype=np.float64)
    x = zero_pad(_as_map(image), pad)
    k, _, _, n_filters = weights.shape
    d_L_d_f = np.zeros(weights.shape)
    d_L_d_x = np.zeros(x.shape)
    for region, i, j in iterate_regions(x, k, stride):
        for f in range(n_filters):
            d_L_d_f[:, :, :, f] += region * d_L_d_out[i, j, f]
            d_L_d_x[i * stride:i * stride + k, j * stride:j * stride + k, :] += (
                weights[:, :, :, f] * d_L_d_out[i, j, f])
    d_L_d_b = d_L_d_out.sum(axis=(0, 1))
    d_L_d_x = d_L_d_x[pad:x.shape[0] - pad, pad:x.shape[1] - pad]
    return d_L_d_f, d_L_d_b, d_L_d_x.reshape(image.shape)


# ---- pooling -------------------------------------------------------------------------------
def pool_forward(image, mode="max", size=2, stride=2):
    """image (H, W, C) -> (out (Ho, Wo, C), winners (Ho, Wo, C, 2) int).

    Max (min) pooling keeps, for every window and channel, the input (row, col) of the first
    maximum (minimum) met in row-major order: a later equal value does not replace it.
    Average pooling has no winners (all -1).
    """
    x = _as_map(image)
    ho, wo, n_ch = (x.shape[0] - size) // stride + 1, (x.shape[1] - size) // stride + 1, x.shape[2]
    out = np.zeros((ho, wo, n_ch))
    winners = np.full((ho, wo, n_ch, 2), -1, dtype=np.intp)
    for region, i, j in iterate_regions(x, size, stride):
        for c in range(n_ch):
            if mode == "avg":
                out[i, j, c] = np.sum(region[:, :, c]) / (size * size)
                continue
            best, at = None, None
            for r in range(size):  # row-major scan; strict comparison keeps the first winner
                for q in range(size):
                    v = region[r, q, c]
                    if best is None or (v > best if mode == "max" else v < best):
                        best, at = v, (r, q)
            out[i, j, c] = best
            winners[i, j, c] = (i * stride + at[0], j * stride + at[1])
    return out, winners


def pool_mask(winners: np.ndarray, in_shape: tuple) -> np.ndarray:
    """Boolean (H, W, C): True at every winning input pixel."""
    mask = np.zeros(in_shape, dtype=bool)
    ho, wo, n_ch, _ = winners.shape
    for i in range(ho):
        for j in range(wo):
            for c in range(n_ch):
                r, q = winners[i, j, c]
                mask[r, q, c] = True
    return mask


def pool_backward(d_L_d_out, winners, in_shape, mode="max", size=2, stride=2):
    """d_L_d_out (Ho, Wo, C) -> d_L_d_input (H, W, C).

    Max/min: the notes' ``image[winner] = d_L_d_out[i, j, f]``, one winner per window (added,
    so overlapping windows that share a winner both count). Average: ``1/n`` to every pixel.
    """
    d_L_d_x = np.zeros(in_shape)
    ho, wo, n_ch = d_L_d_out.shape
    for i in range(ho):
        for j in range(wo):
            for c in range(n_ch):
                g = d_L_d_out[i, j, c]
                if mode == "avg":
                    d_L_d_x[i * stride:i * stride + size, j * stride:j * stride + size, c] += (
                        g / (size * size))
                else:
                    r, q = winners[i, j, c]
                    d_L_d_x[r, q, c] += g
    return d_L_d_x


# ---- ReLU, dense, softmax ------------------------------------------------------------------
def relu_forward(x):
    return np.where(x > 0, x, 0.0)


def relu_backward(x, d_L_d_out):
    """ReLU passes the gradient where its input was positive (0 at exactly 0)."""
    return np.where(x > 0, d_L_d_out, 0.0)


def dense_forward(x, weights, bias):
    """totals = np.dot(flattened_input, weights) + bias: x (n_in,) -> (n_out,)."""
    return np.dot(x, weights) + bias


def dense_backward(x, weights, d_L_d_t):
    """(d_L_d_w (n_in, n_out), d_L_d_b (n_out,), d_L_d_inputs (n_in,)), as in the notes:
    d_t_d_w = input, d_t_d_b = 1, d_t_d_inputs = weights."""
    d_L_d_w = x[np.newaxis].T @ d_L_d_t[np.newaxis]
    d_L_d_b = d_L_d_t * 1.0
    d_L_d_inputs = weights @ d_L_d_t
    return d_L_d_w, d_L_d_b, d_L_d_inputs


def softmax(totals):
    """np.exp(totals) / np.sum(np.exp(totals)), shifted by the max first (the shift cancels in
    the ratio; without it exp overflows for large totals)."""
    t_exp = np.exp(totals - np.max(totals))
    return t_exp / np.sum(t_exp)


def softmax_cross_entropy_backward(totals, label):
    """The notes' backward through softmax and L = -log(out[label]) for one sample.

    Returns (loss, out (10,), d_L_d_out (10,), d_out_d_t (10,), d_L_d_t (10,)), where
    d_out_d_t is the row of the softmax Jacobian for the label c:
    -e^tc e^tk / S^2 for k != c and e^tc (S - e^tc) / S^2 for k == c.
    """
    t_exp = np.exp(totals - np.max(totals))
    S = np.sum(t_exp)  # noqa: N806 - the notes' name
    out = t_exp / S
    loss = -np.log(out[label])
    d_L_d_out = np.zeros(len(totals))
    d_L_d_out[label] = -1 / out[label]  # only the label's entry is non zero
    d_out_d_t = -t_exp[label] * t_exp / (S ** 2)
    d_out_d_t[label] = t_exp[label] * (S - t_exp[label]) / (S ** 2)
    d_L_d_t = d_L_d_out[label] * d_out_d_t
    return loss, out, d_L_d_out, d_out_d_t, d_L_d_t


# ---- a whole network -----------------------------------------------------------------------
class ReferenceNet:
    """A config from ``build_config`` run one sample at a time with the loops above.

    ``params``: {"conv1.W": (k, k, C_in, C_out), "dense1.W": (n_in, n_out), ...} (copied to
    float64), e.g. ``ReferenceNet(model.config, model.params())``.
    """

    def __init__(self, config: dict, params: dict):
        kinds = [spec["type"] for spec in config["layers"]]
        self.specs = list(zip(layer_names(kinds), config["layers"], strict=True))
        self.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}

    def forward(self, image) -> dict:
        """image (28, 28) float input -> trace of one sample: "input", each layer's output by
        name, "<pool>.mask" and "<pool>.winners" for max/min pools, "logits", "probs"."""
        trace = {"input": np.array(image, dtype=np.float64)}
        a = trace["input"]
        for name, spec in self.specs:
            kind = spec["type"]
            if kind == "conv":
                a = conv_forward(a, self.params[name + ".W"], self.params.get(name + ".b"),
                                 spec.get("stride", 1), spec.get("pad", 0))
            elif kind == "relu":
                a = relu_forward(a)
            elif kind == "pool":
                mode = spec.get("mode", "max")
                a_in = a
                a, winners = pool_forward(a_in, mode, spec.get("size", 2), spec.get("stride", 2))
                if mode != "avg":
                    trace[name + ".winners"] = winners
                    trace[name + ".mask"] = pool_mask(winners, a_in.shape)
            elif kind == "flatten":
                a = a.reshape(-1)  # row-major: (H, W, C) -> (H * W * C,)
            elif kind == "dense":
                a = dense_forward(a, self.params[name + ".W"], self.params[name + ".b"])
            trace[name] = a
        trace["logits"] = a
        trace["probs"] = softmax(a)
        return trace

    def backward(self, trace: dict, label: int) -> dict:
        """Fill ``trace`` (from ``forward``) with the gradients of this sample's loss:
        "loss", "dL_dout", "dout_dt", "dL_dt", "<layer>.dW" / ".db" and "<layer>.dx"
        (every layer but the first). Returns the weight gradients keyed like ``params``."""
        loss, _, d_out, d_out_d_t, d = softmax_cross_entropy_backward(trace["logits"], label)
        trace.update(loss=loss, dL_dout=d_out, dout_dt=d_out_d_t, dL_dt=d)
        grads = {}
        names = [name for name, _ in self.specs]
        for index in range(len(self.specs) - 1, -1, -1):
            name, spec = self.specs[index]
            kind = spec["type"]
            a_in = trace[names[index - 1]] if index else trace["input"]
            if kind == "dense":
                dw, db, d = dense_backward(a_in, self.params[name + ".W"], d)
                grads[name + ".W"], grads[name + ".b"] = dw, db
            elif kind == "flatten":
                d = d.reshape(a_in.shape)
            elif kind == "pool":
                d = pool_backward(d, trace.get(name + ".winners"), a_in.shape,
                                  spec.get("mode", "max"), spec.get("size", 2),
                                  spec.get("stride", 2))
            elif kind == "relu":
                d = relu_backward(a_in, d)
            elif kind == "conv":
                dw, db, d = conv_backward(a_in, self.params[name + ".W"], d,
                                          spec.get("stride", 1), spec.get("pad", 0))
                grads[name + ".W"] = dw
                if name + ".b" in self.params:
                    grads[name + ".b"] = db
            for key in ("W", "b"):
                if f"{name}.{key}" in grads:
                    trace[f"{name}.d{key}"] = grads[f"{name}.{key}"]
            if index:
                trace[name + ".dx"] = d
        return grads

    def loss_and_grads(self, x, labels):
        """A batch, one sample at a time. x (N, 28, 28) -> (losses (N,), probs (N, 10),
        grads (the mean over the batch), trace).

        The trace stacks the per-sample traces along a new first axis, as ``Model`` does:
        "dL_dout", "dout_dt", "dL_dt" are each sample's own; "<layer>.dx" are gradients of
        the mean loss (each sample's divided by N) and "<layer>.dW" / ".db" the mean gradients.
        """
        n = len(x)
        traces = []
        grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        for image, label in zip(x, labels, strict=True):
            trace = self.forward(image)
            for key, g in self.backward(trace, int(label)).items():
                grads[key] += g / n
            traces.append(trace)
        trace = {key: np.stack([t[key] for t in traces]) for key in traces[0]}
        for key in trace:
            if key.endswith(".dx"):
                trace[key] = trace[key] / n
        for key, g in grads.items():
            name, kind = key.rsplit(".", 1)
            trace[f"{name}.d{kind}"] = g
        trace["labels"] = np.asarray(labels)
        return trace["loss"], trace["probs"], grads, trace

    def train_step(self, image, label: int, lr: float = 0.005) -> float:
        """The notes' per-sample SGD step: forward, backward, ``w -= lr * grad``. Returns the
        loss before the update."""
        trace = self.forward(image)
        grads = self.backward(trace, int(label))
        for key, g in grads.items():
            self.params[key] -= lr * g
        return float(trace["loss"])
