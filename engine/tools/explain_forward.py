"""The arithmetic of one forward cell: a conv output, a pooled value, a ReLU, a flattened
input, a dense output, a probability, the loss (recomputed in float64 from the trace)."""
from __future__ import annotations

import numpy as np

from convscope.engine.net import names
from convscope.engine.tools.explain_text import Explanation, Grids, fmt, matrix_rows, sum_lines


# ---- the layer around a trace key -------------------------------------------------------
def position(model, name: str) -> int:
    for i, layer in enumerate(model.layers):
        if layer.name == name:
            return i
    raise KeyError(f"no layer named {name!r}")


def input_key(model, name: str) -> str:
    i = position(model, name)
    return names.INPUT if i == 0 else model.layers[i - 1].name


def layer_input(model, trace, name: str) -> np.ndarray:
    x = trace[input_key(model, name)]
    return x[..., None] if x.ndim == 3 and model.layers[position(model, name)].kind == "conv" else x


def grad_out(model, trace, name: str) -> np.ndarray:
    """dL/d(output of layer ``name``) for the batch mean loss (what its backward received)."""
    i = position(model, name)
    if i == len(model.layers) - 1:
        return trace[names.DL_DT] / len(trace[names.LABELS])
    return trace[names.dx_key(model.layers[i + 1].name)]


def grad_name(model, trace, name: str) -> str:
    i = position(model, name)
    if i == len(model.layers) - 1:
        return "dL/dt"
    return f"dL/d{name}"


def padded(layer, x):
    p = layer.pad
    return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x


# ---- forward ------------------------------------------------------------------------------
def conv(model, trace, name, index, n, params):
    layer = model.layer(name)
    i, j, f = index
    k, s, p = layer.k, layer.stride, layer.pad
    x = padded(layer, layer_input(model, trace, name).astype(np.float64))
    region = x[n, i * s:i * s + k, j * s:j * s + k, :]  # (k, k, C_in)
    w = params[f"{name}.W"].astype(np.float64)[:, :, :, f]  # (k, k, C_in)
    products = region * w
    b = float(params[f"{name}.b"][f]) if f"{name}.b" in params else 0.0
    value = float(products.sum() + b)
    src = input_key(model, name)
    r0, c0 = i * s - p, j * s - p
    lines = [f"region: {src} rows {r0}..{r0 + k - 1}, cols {c0}..{c0 + k - 1}"
             + (" (outside the image counts as 0)" if p else "")]
    if region.shape[2] == 1:  # the region and the filter as small matrices
        lines.append(Grids(("region", f"filter {f}"), (matrix_rows(region[:, :, 0]),
                                                       matrix_rows(w[:, :, 0]))))
    labels, terms = [], []
    for di in range(k):
        for dj in range(k):
            for c in range(region.shape[2]):
                ch = f",{c}" if region.shape[2] > 1 else ""
                labels.append(f"x[{r0 + di},{c0 + dj}{ch}] * W[{di},{dj}{ch}] "
                              f"= {fmt(region[di, dj, c])} * {fmt(w[di, dj, c])}")
                terms.append(products[di, dj, c])
    if len(terms) <= 27:
        lines.append(f"{len(terms)} products:")
        lines += [f"  {lab} = {fmt(t)}" for lab, t in zip(labels, terms, strict=True)]
    else:
        lines += sum_lines(terms, labels, "products")
    if b:
        lines.append(f"  + bias b[{f}] = {fmt(b)}")
    lines.append(f"sum = {fmt(value)}")
    sources = [(src, (r, c, ch) if x.shape[3] > 1 or src != names.INPUT else (r, c))
               for r in range(r0, r0 + k) for c in range(c0, c0 + k)
               for ch in range(region.shape[2]) if 0 <= r < x.shape[1] - 2 * p
               and 0 <= c < x.shape[2] - 2 * p]
    sources += [(f"{name}.W", (di, dj, c, f)) for di in range(k) for dj in range(k)
                for c in range(region.shape[2])]
    return Explanation(name, index, f"{name} output at row {i}, col {j}, filter {f}",
                       "out[i,j,f] = sum(region * W[:,:,:,f])"
                       + (" + b[f]" if f"{name}.b" in params else ""),
                       tuple(lines), value, float(trace[name][n, i, j, f]), tuple(terms),
                       sources=tuple(sources))


def pool(model, trace, name, index, n, params):
    layer = model.layer(name)
    i, j, c = index
    k, s = layer.size, layer.stride
    src = input_key(model, name)
    x = trace[src][n]
    window = x[i * s:i * s + k, j * s:j * s + k, c].astype(np.float64)  # (k, k)
    cells = [(i * s + a, j * s + b) for a in range(k) for b in range(k)]
    cand = window.ravel()
    lines = [f"window: {src} rows {i * s}..{i * s + k - 1}, cols {j * s}..{j * s + k - 1}, "
             f"channel {c}", f"{k * k} candidates:"]
    lines += [f"  {src}[{r},{q},{c}] = {fmt(v)}" for (r, q), v in zip(cells, cand, strict=True)]
    notes = []
    if layer.mode == "avg":
        value = float(cand.mean())
        lines.append(f"average = ({' + '.join(fmt(v) for v in cand)}) / {k * k} = {fmt(value)}")
    else:
        best = cand.max() if layer.mode == "max" else cand.min()
        value = float(best)
        mask = trace[names.mask_key(name)][n, i * s:i * s + k, j * s:j * s + k, c].ravel()
        win = int(np.flatnonzero(mask)[0])
        tied = [cells[t] for t in np.flatnonzero(cand == best)]
        word = "max" if layer.mode == "max" else "min"
        lines.append(f"{word} = {fmt(value)}, winner {src}[{cells[win][0]},{cells[win][1]},{c}]")
        if len(tied) > 1:
            notes.append(f"tie: {len(tied)} candidates equal {fmt(best)} "
                         f"({', '.join(f'({r},{q})' for r, q in tied)}); the first in row-major "
                         "order wins and alone receives the gradient.")
        else:
            notes.append("only the winner will receive gradient in the backward pass.")
    return Explanation(name, index, f"{name} at row {i}, col {j}, channel {c}",
                       f"pooled[i,j,c] = {layer.mode}(the {k}x{k} window)", tuple(lines), value,
                       float(trace[name][n, i, j, c]), tuple(cand), tuple(notes),
                       tuple((src, (r, q, c)) for r, q in cells))


def relu(model, trace, name, index, n, params):
    src = input_key(model, name)
    v = float(trace[src][(n, *index)])
    return Explanation(name, index, f"{name} at {index}", "relu(x) = max(0, x)",
                       (f"max(0, {fmt(v)}) = {fmt(max(v, 0.0))}",), max(v, 0.0),
                       float(trace[name][(n, *index)]), (v,), sources=((src, index),))


def flatten(model, trace, name, index, n, params):
    src = input_key(model, name)
    shape = trace[src].shape[1:]
    cell = tuple(int(a) for a in np.unravel_index(index[0], shape))
    v = float(trace[src][(n, *cell)])
    return Explanation(name, index, f"flattened input x[{index[0]}]",
                       f"x = {src} reshaped to {int(np.prod(shape))} values (row, col, channel)",
                       (f"x[{index[0]}] = {src}[{', '.join(map(str, cell))}] = {fmt(v)}",), v,
                       float(trace[name][n, index[0]]), (v,), sources=((src, cell),))


def dense(model, trace, name, index, n, params):
    (k,) = index
    src = input_key(model, name)
    x = trace[src][n].astype(np.float64)
    w = params[f"{name}.W"].astype(np.float64)[:, k]
    b = float(params[f"{name}.b"][k])
    products = x * w
    value = float(products.sum() + b)
    labels = [f"x[{r}] * W[{r},{k}] = {fmt(x[r])} * {fmt(w[r])}" for r in range(len(x))]
    last = position(model, name) == len(model.layers) - 1
    sym = "t" if last else name
    lines = sum_lines(products, labels, "products x[r] * W[r,k]")
    lines += [f"  + bias b[{k}] = {fmt(b)}", f"{sym}[{k}] = {fmt(value)}"]
    return Explanation(name, index, f"logit t[{k}]" if last else f"{name}[{k}]",
                       f"{sym}[k] = sum over r of x[r] * W[r,k] + b[k]", tuple(lines), value,
                       float(trace[name][n, k]), tuple(products),
                       sources=((f"{name}.W", (slice(None), k)),))


def probs(model, trace, name, index, n, params):
    (k,) = index
    t = trace[names.LOGITS][n].astype(np.float64)
    m = t.max()
    e = np.exp(t - m)
    s = e.sum()
    lines = [f"subtract the largest logit {fmt(m)} first (the ratio is unchanged, nothing "
             "overflows):"]
    lines += [f"  exp(t[{j}] - {fmt(m)}) = exp({fmt(t[j] - m)}) = {fmt(e[j])}"
              + ("   <-" if j == k else "") for j in range(len(t))]
    lines += [f"S = sum of the {len(t)} = {fmt(s)}",
              f"out[{k}] = {fmt(e[k])} / {fmt(s)} = {fmt(e[k] / s)}"]
    return Explanation(name, index, f"softmax out[{k}]", "out[k] = exp(t[k]) / S,  S = sum of "
                       "exp(t[j])", tuple(lines), float(e[k] / s),
                       float(trace[names.PROBS][n, k]), tuple(e),
                       sources=tuple((names.LOGITS, (j,)) for j in range(len(t))))


def loss(model, trace, name, index, n, params):
    c = int(trace[names.LABELS][n])
    p = float(trace[names.PROBS][n, c])
    line = f"L = -log(out[{c}]) = -log({fmt(p)}) = "
    if p > 0:
        value = float(-np.log(np.float64(p)))
    else:  # out[label] underflowed to 0 (a diverging network): the same L from the logits
        t = trace[names.LOGITS][n].astype(np.float64)
        value = float(np.log(np.exp(t - t.max()).sum()) - (t[c] - t.max()))
        line = f"L = -log(out[{c}]), out[{c}] underflowed to 0; from the logits: L = "
    return Explanation("loss", (), "loss", "L = -log(out[label])",
                       (f"label = {c}", line + fmt(value)),
                       value, float(trace[names.LOSS][n]), (p,),
                       sources=((names.PROBS, (c,)),))
