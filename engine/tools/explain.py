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

import textwrap
from dataclasses import dataclass, field

import numpy as np

SHOWN_TERMS = 10  # long sums list their largest terms only


@dataclass(frozen=True)
class Explanation:
    key: str
    index: tuple
    title: str  # what the cell is, in the notes' names
    formula: str  # the rule, symbolically
    lines: tuple  # the arithmetic with the actual numbers: a str per line, or a Grids
    value: float  # recomputed here (float64) from the inputs of the rule
    stored: float  # the cell's value in the trace
    terms: tuple = ()  # the numbers summed or compared (all of them, float64)
    notes: tuple = ()  # winners, ties, what was left out
    sources: tuple = field(default=())  # ((trace key, index), ...) cells it is computed from

    def text(self, width: int = 64) -> str:
        """Plain text at most ``width`` characters a line where it can be: long lines broken
        between terms (``wrap``), small matrices side by side or one above the other."""
        out = []
        for line in [self.title, self.formula, ""] + list(self.lines):
            out += line.render(width) if isinstance(line, Grids) else wrap(line, width)
        for note in self.notes:
            out += [""] + textwrap.wrap(note, width, break_long_words=False,
                                        break_on_hyphens=False)
        return "\n".join(out)


@dataclass(frozen=True)
class Grids:
    """Small matrices with captions (a conv region and its filter), a line of ``lines``."""
    captions: tuple  # one str per matrix
    matrices: tuple  # one tuple of rows per matrix, each row a tuple of floats

    def render(self, width: int = 64) -> list:
        """Side by side when they fit in ``width``, else one above the other (with 2
        significant digits if 3 are too wide); a row's numbers always stay on one line."""
        blocks = [_block(c, m) for c, m in zip(self.captions, self.matrices, strict=True)]
        widths = [max(len(line) for line in b) for b in blocks]
        if sum(widths) + 3 * (len(blocks) - 1) <= width and len({len(b) for b in blocks}) == 1:
            return ["   ".join(line.ljust(w) for line, w in zip(rows, widths, strict=True))
                    .rstrip() for rows in zip(*blocks, strict=True)]
        if max(widths) > width:
            blocks = [_block(c, m, 2) for c, m in zip(self.captions, self.matrices, strict=True)]
        return [line for b in blocks for line in b]


def _block(caption: str, rows, digits: int = 3) -> list:
    """A caption and a matrix, its numbers right-aligned in columns."""
    texts = [[f"{v:.{digits}g}" for v in row] for row in rows]
    n = max(len(t) for row in texts for t in row)
    return [caption] + ["  " + " ".join(t.rjust(n) for t in row) for row in texts]


BREAKS = (" = ", " + ", " - ", " * ", " ")  # where a long line may break, best first


def wrap(line: str, width: int) -> list:
    """``line`` as lines of at most ``width`` characters, continued 4 spaces further in:
    broken before an " = " if that is enough, else also between the terms of a sum, then
    between factors, last between words; never inside a number or a name."""
    lead = len(line) - len(line.lstrip(" "))
    return _wrap(line, width, " " * (lead + 4), 0)


def _wrap(line: str, width: int, indent: str, level: int) -> list:
    if len(line) <= width or level == len(BREAKS):
        return [line]
    sep = BREAKS[level]
    lead = len(line) - len(line.lstrip(" "))
    head, *rest = line[lead:].split(sep)
    out = [line[:lead] + head]
    for piece in rest:
        if len(out[-1]) + len(sep) + len(piece) <= width:
            out[-1] += sep + piece
        else:
            out.append(indent + sep.lstrip() + piece)
    return [part for p in out for part in _wrap(p, width, indent, level + 1)]


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


def fmt(v: float) -> str:
    """A number as a student reads it: 4 significant digits, fixed width."""
    v = float(v)
    if v == 0:
        return "0"
    return f"{v:.4g}" if 1e-4 <= abs(v) < 1e5 else f"{v:.3e}"


# ---- the layer around a trace key -------------------------------------------------------
def _pos(model, name: str) -> int:
    for i, layer in enumerate(model.layers):
        if layer.name == name:
            return i
    raise KeyError(f"no layer named {name!r}")


def _input_key(model, name: str) -> str:
    i = _pos(model, name)
    return "input" if i == 0 else model.layers[i - 1].name


def _layer_input(model, trace, name: str) -> np.ndarray:
    x = trace[_input_key(model, name)]
    return x[..., None] if x.ndim == 3 and model.layers[_pos(model, name)].kind == "conv" else x


def _grad_out(model, trace, name: str) -> np.ndarray:
    """dL/d(output of layer ``name``) for the batch mean loss (what its backward received)."""
    i = _pos(model, name)
    if i == len(model.layers) - 1:
        return trace["dL_dt"] / len(trace["labels"])
    return trace[model.layers[i + 1].name + ".dx"]


def _grad_name(model, trace, name: str) -> str:
    i = _pos(model, name)
    if i == len(model.layers) - 1:
        return "dL/dt"
    return f"dL/d{name}"


def _padded(layer, x):
    p = layer.pad
    return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x


def _rows(m: np.ndarray) -> tuple:
    """A (k, k) array as a tuple of rows of floats (plain, comparable data)."""
    return tuple(tuple(float(v) for v in row) for row in m)


def _largest(terms, count=SHOWN_TERMS):
    """Indices of the ``count`` largest |terms|, in order of size."""
    order = np.argsort(-np.abs(np.asarray(terms)), kind="stable")
    return [int(i) for i in order[:count]]


def _sum_lines(values, labels, what: str) -> list:
    values = np.asarray(values, dtype=np.float64)
    nonzero = int(np.count_nonzero(values))
    lines = []
    if len(values) <= 12:
        lines += [f"  {lab} = {fmt(v)}" for lab, v in zip(labels, values, strict=True)]
    elif nonzero == 0:
        lines.append(f"all {len(values)} {what} are 0")
    else:
        lines.append(f"{len(values)} {what}, {nonzero} non-zero; the {min(SHOWN_TERMS, nonzero)} "
                     "largest:")
        lines += [f"  {labels[i]} = {fmt(values[i])}" for i in _largest(values)
                  if values[i] != 0]
        pos, neg = values[values > 0].sum(), values[values < 0].sum()
        lines.append(f"  positive terms add up to {fmt(pos)}, negative to {fmt(neg)}")
    return lines


# ---- forward ------------------------------------------------------------------------------
def _conv(model, trace, name, index, n, params):
    layer = model.layer(name)
    i, j, f = index
    k, s, p = layer.k, layer.stride, layer.pad
    x = _padded(layer, _layer_input(model, trace, name).astype(np.float64))
    region = x[n, i * s:i * s + k, j * s:j * s + k, :]  # (k, k, C_in)
    w = params[f"{name}.W"].astype(np.float64)[:, :, :, f]  # (k, k, C_in)
    products = region * w
    b = float(params[f"{name}.b"][f]) if f"{name}.b" in params else 0.0
    value = float(products.sum() + b)
    src = _input_key(model, name)
    r0, c0 = i * s - p, j * s - p
    lines = [f"region: {src} rows {r0}..{r0 + k - 1}, cols {c0}..{c0 + k - 1}"
             + (" (outside the image counts as 0)" if p else "")]
    if region.shape[2] == 1:  # the region and the filter as small matrices
        lines.append(Grids(("region", f"filter {f}"), (_rows(region[:, :, 0]),
                                                       _rows(w[:, :, 0]))))
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
        lines += _sum_lines(terms, labels, "products")
    if b:
        lines.append(f"  + bias b[{f}] = {fmt(b)}")
    lines.append(f"sum = {fmt(value)}")
    sources = [(src, (r, c, ch) if x.shape[3] > 1 or src != "input" else (r, c))
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


def _pool(model, trace, name, index, n, params):
    layer = model.layer(name)
    i, j, c = index
    k, s = layer.size, layer.stride
    src = _input_key(model, name)
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
        mask = trace[f"{name}.mask"][n, i * s:i * s + k, j * s:j * s + k, c].ravel()
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


def _relu(model, trace, name, index, n, params):
    src = _input_key(model, name)
    v = float(trace[src][(n, *index)])
    return Explanation(name, index, f"{name} at {index}", "relu(x) = max(0, x)",
                       (f"max(0, {fmt(v)}) = {fmt(max(v, 0.0))}",), max(v, 0.0),
                       float(trace[name][(n, *index)]), (v,), sources=((src, index),))


def _flatten(model, trace, name, index, n, params):
    src = _input_key(model, name)
    shape = trace[src].shape[1:]
    cell = tuple(int(a) for a in np.unravel_index(index[0], shape))
    v = float(trace[src][(n, *cell)])
    return Explanation(name, index, f"flattened input x[{index[0]}]",
                       f"x = {src} reshaped to {int(np.prod(shape))} values (row, col, channel)",
                       (f"x[{index[0]}] = {src}[{', '.join(map(str, cell))}] = {fmt(v)}",), v,
                       float(trace[name][n, index[0]]), (v,), sources=((src, cell),))


def _dense(model, trace, name, index, n, params):
    (k,) = index
    src = _input_key(model, name)
    x = trace[src][n].astype(np.float64)
    w = params[f"{name}.W"].astype(np.float64)[:, k]
    b = float(params[f"{name}.b"][k])
    products = x * w
    value = float(products.sum() + b)
    labels = [f"x[{r}] * W[{r},{k}] = {fmt(x[r])} * {fmt(w[r])}" for r in range(len(x))]
    last = _pos(model, name) == len(model.layers) - 1
    sym = "t" if last else name
    lines = _sum_lines(products, labels, "products x[r] * W[r,k]")
    lines += [f"  + bias b[{k}] = {fmt(b)}", f"{sym}[{k}] = {fmt(value)}"]
    return Explanation(name, index, f"logit t[{k}]" if last else f"{name}[{k}]",
                       f"{sym}[k] = sum over r of x[r] * W[r,k] + b[k]", tuple(lines), value,
                       float(trace[name][n, k]), tuple(products),
                       sources=((f"{name}.W", (slice(None), k)),))


def _probs(model, trace, name, index, n, params):
    (k,) = index
    t = trace["logits"][n].astype(np.float64)
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
                       float(trace["probs"][n, k]), tuple(e),
                       sources=tuple(("logits", (j,)) for j in range(len(t))))


def _loss(model, trace, name, index, n, params):
    c = int(trace["labels"][n])
    p = float(trace["probs"][n, c])
    line = f"L = -log(out[{c}]) = -log({fmt(p)}) = "
    if p > 0:
        value = float(-np.log(np.float64(p)))
    else:  # out[label] underflowed to 0 (a diverging network): the same L from the logits
        t = trace["logits"][n].astype(np.float64)
        value = float(np.log(np.exp(t - t.max()).sum()) - (t[c] - t.max()))
        line = f"L = -log(out[{c}]), out[{c}] underflowed to 0; from the logits: L = "
    return Explanation("loss", (), "loss", "L = -log(out[label])",
                       (f"label = {c}", line + fmt(value)),
                       value, float(trace["loss"][n]), (p,),
                       sources=(("probs", (c,)),))


# ---- backward -----------------------------------------------------------------------------
def _softmax_grad(model, trace, name, index, n, params):
    (k,) = index
    c = int(trace["labels"][n])
    out = trace["probs"][n].astype(np.float64)
    oc, ok = out[c], out[k]
    oc_safe = max(oc, float(np.finfo(np.float32).tiny))  # as the trace: never -1/0
    if name == "dL_dout":
        value = -1.0 / oc_safe if k == c else 0.0
        lines = ((f"k = label {c}: dL/dout[{c}] = -1 / out[{c}] = -1 / {fmt(oc)} = {fmt(value)}",)
                 if k == c else (f"k = {k} is not the label {c}: L = -log(out[{c}]) does not "
                                 f"depend on out[{k}], so dL/dout[{k}] = 0",))
        return Explanation(name, index, f"dL/dout[{k}]", "dL/dout[k] = -1/out[label] if k is "
                           "the label, else 0", lines, value, float(trace[name][n, k]), (oc,),
                           sources=(("probs", (c,)),))
    if name == "dout_dt":
        value = oc * (1 - oc) if k == c else -oc * ok
        lines = ((f"k = label: out[{c}] * (1 - out[{c}]) = {fmt(oc)} * {fmt(1 - oc)} "
                  f"= {fmt(value)}",) if k == c else
                 (f"k != label: -out[{c}] * out[{k}] = -{fmt(oc)} * {fmt(ok)} = {fmt(value)}",))
        lines += ("(the notes: -e^tc e^tk / S^2 for k != c, e^tc (S - e^tc) / S^2 for k = c)",)
        return Explanation(name, index, f"dout[{c}]/dt[{k}]", "dout[c]/dt[k] = out[c](1-out[c]) "
                           "if k = c, else -out[c] out[k]", lines, value,
                           float(trace[name][n, k]), (oc, ok),
                           sources=(("probs", (c,)), ("probs", (k,))))
    d_out = -1.0 / oc_safe
    dodt = oc * (1 - oc) if k == c else -oc * ok
    value = d_out * dodt
    lines = (f"dL/dout[{c}] * dout[{c}]/dt[{k}] = {fmt(d_out)} * {fmt(dodt)} = {fmt(value)}",
             f"= out[{k}] - onehot[{k}] = {fmt(ok)} - {1 if k == c else 0} = "
             f"{fmt(ok - (k == c))}")
    return Explanation(name, index, f"dL/dt[{k}]", "dL/dt = dL/dout[label] * dout[label]/dt "
                       "= out - onehot(label)", lines, value, float(trace[name][n, k]),
                       (d_out, dodt), sources=(("dL_dout", (c,)), ("dout_dt", (k,))))


def _dense_grad(model, trace, name, index, n, params):
    layer, what = name.split(".")
    g = _grad_out(model, trace, layer).astype(np.float64)  # (N, n_out)
    x = trace[_input_key(model, layer)].astype(np.float64)  # (N, n_in)
    gname = _grad_name(model, trace, layer)
    gkey = "dL_dt" if gname == "dL/dt" else layer
    nb = len(g)
    mean = f" / {nb} (batch mean)" if nb > 1 else ""
    if what == "dW":
        r, k = index
        terms = x[:, r] * g[:, k]
        value = float(terms.sum())
        lines = [f"x[{r}] * {gname}[{k}] = {fmt(x[s, r])} * {fmt(g[s, k] * nb)}{mean} = "
                 f"{fmt(terms[s])}" for s in range(nb)][:SHOWN_TERMS]
        src = _input_key(model, layer)
        if src == "flatten":  # which pooled value x[r] is
            pooled = _input_key(model, "flatten")
            cell = np.unravel_index(r, trace[pooled].shape[1:])
            lines.append(f"(x[{r}] is {pooled}[{', '.join(str(int(v)) for v in cell)}])")
        total = (f"sum over the batch = {fmt(value)}",) if nb > 1 else ()
        return Explanation(name, index, f"dL/dw[{r},{k}] ({layer})", f"dL/dw[r,k] = x[r] * "
                           f"{gname}[k]", tuple(lines) + total, value,
                           float(trace[name][r, k]), tuple(terms),
                           sources=((_input_key(model, layer), (r,)), (gkey, (k,))))
    if what == "db":
        (k,) = index
        value = float(g[:, k].sum())
        return Explanation(name, index, f"dL/db[{k}] ({layer})", f"dL/db[k] = {gname}[k] "
                           "(dt/db = 1)", (f"dL/db[{k}] = {fmt(value)}",), value,
                           float(trace[name][k]), tuple(g[:, k]), sources=((gkey, (k,)),))
    (r,) = index
    w = params[f"{layer}.W"].astype(np.float64)[r]  # (n_out,)
    terms = w * g[n]
    value = float(terms.sum())
    labels = [f"W[{r},{k}] * {gname}[{k}] = {fmt(w[k])} * {fmt(g[n, k])}" for k in range(len(w))]
    lines = _sum_lines(terms, labels, "products") + [f"sum = {fmt(value)}"]
    if nb > 1:
        lines.append(f"({gname} here includes the 1/{nb} of the batch mean)")
    return Explanation(name, index, f"dL/dinput[{r}] ({layer})", f"dL/dinput[r] = sum over k "
                       f"of W[r,k] * {gname}[k]", tuple(lines), value, float(trace[name][n, r]),
                       tuple(terms), sources=tuple((gkey, (k,)) for k in range(len(w))))


def _pool_grad(model, trace, name, index, n, params):
    layer_name = name.split(".")[0]
    layer = model.layer(layer_name)
    i, j, c = index
    k, s = layer.size, layer.stride
    g = _grad_out(model, trace, layer_name).astype(np.float64)[n]  # (Ho, Wo, C)
    ho, wo = g.shape[0], g.shape[1]
    gkey = model.layers[_pos(model, layer_name) + 1].name + ".dx"
    lines, terms, sources = [], [], []
    for wi in range(max(0, -(-(i - k + 1) // s)), min(ho - 1, i // s) + 1):
        for wj in range(max(0, -(-(j - k + 1) // s)), min(wo - 1, j // s) + 1):
            gv = g[wi, wj, c]
            sources.append((gkey, (wi, wj, c)))
            if layer.mode == "avg":
                terms.append(gv / (k * k))
                lines.append(f"window ({wi},{wj}): average pool shares dL/dpooled = {fmt(gv)} "
                             f"equally: / {k * k} = {fmt(gv / (k * k))}")
                continue
            mask = trace[f"{layer_name}.mask"][n, wi * s:wi * s + k, wj * s:wj * s + k, c]
            a, b = (int(v) for v in np.argwhere(mask)[0])
            wr, wc = wi * s + a, wj * s + b
            won = (wr, wc) == (i, j)
            terms.append(gv if won else 0.0)
            lines.append(f"window ({wi},{wj}): winner is ({wr},{wc}) -> "
                         + (f"this pixel gets dL/dpooled[{wi},{wj},{c}] = {fmt(gv)}" if won else
                            f"this pixel lost, it gets 0 (all {fmt(gv)} goes to the winner)"))
    value = float(np.sum(terms))
    lines.append(f"gradient = {fmt(value)}")
    return Explanation(name, index, f"pool-routed gradient at row {i}, col {j}, channel {c}",
                       "dL/dconv[i,j,c] = dL/dpooled of its window if (i,j) won the window, "
                       "else 0", tuple(lines), value, float(trace[name][(n, *index)]),
                       tuple(terms), sources=tuple(sources))


def _relu_grad(model, trace, name, index, n, params):
    layer_name = name.split(".")[0]
    x = float(trace[_input_key(model, layer_name)][(n, *index)])
    g = float(_grad_out(model, trace, layer_name)[(n, *index)])
    value = g if x > 0 else 0.0
    return Explanation(name, index, f"{layer_name} gradient at {index}",
                       "dL/dx = dL/dout if x > 0 else 0",
                       (f"x = {fmt(x)} -> {'passes' if x > 0 else 'blocked'}: {fmt(value)}",),
                       value, float(trace[name][(n, *index)]), (x, g))


def _conv_grad(model, trace, name, index, n, params):
    layer_name, what = name.split(".")
    layer = model.layer(layer_name)
    k, s, p = layer.k, layer.stride, layer.pad
    x = _padded(layer, _layer_input(model, trace, layer_name).astype(np.float64))  # (N,Hp,Wp,C)
    g = _grad_out(model, trace, layer_name).astype(np.float64)  # (N, Ho, Wo, C_out)
    nb, ho, wo, _ = g.shape
    if what == "db":
        (f,) = index
        value = float(g[..., f].sum())
        return Explanation(name, index, f"dL/db[{f}] ({layer_name})", "dL/db[f] = sum of "
                           "dL/dout[:,:,f]", (f"sum of {ho * wo} values = {fmt(value)}",), value,
                           float(trace[name][f]), tuple(g[..., f].ravel()))
    if what == "dx":
        i, j, c = index
        w = params[f"{layer_name}.W"].astype(np.float64)
        terms, labels = [], []
        for di in range(k):
            for dj in range(k):
                oi, oj = i + p - di, j + p - dj
                if oi % s or oj % s or not (0 <= oi // s < ho and 0 <= oj // s < wo):
                    continue
                for f in range(g.shape[3]):
                    terms.append(w[di, dj, c, f] * g[n, oi // s, oj // s, f])
                    labels.append(f"W[{di},{dj},{c},{f}] * dL/dout[{oi // s},{oj // s},{f}]")
        value = float(np.sum(terms))
        lines = _sum_lines(terms, labels, "products") + [f"sum = {fmt(value)}"]
        return Explanation(name, index, f"dL/dinput of {layer_name} at {index}", "dL/dx = sum "
                           "over the outputs it fed of W * dL/dout", tuple(lines), value,
                           float(trace[name][(n, *index)]), tuple(terms))
    di, dj, c, f = index
    vals = x[:, di:di + s * ho:s, dj:dj + s * wo:s, c]  # (N, Ho, Wo): region[di,dj] of each
    terms = (vals * g[..., f]).ravel()
    value = float(terms.sum())
    where = [(b, a, q) for b in range(nb) for a in range(ho) for q in range(wo)]
    ch = f",{c}" if x.shape[3] > 1 else ""
    labels = [f"x[{a * s + di - p},{q * s + dj - p}{ch}] * dL/dout[{a},{q},{f}] = "
              f"{fmt(vals[b, a, q])} * {fmt(g[b, a, q, f])}" for b, a, q in where]
    lines = [f"one term per {k}x{k} region ({ho}x{wo} of them): the region's pixel at "
             f"({di},{dj}), x[i+{di},j+{dj}], times dL/dout[i,j,{f}] of the output it produced"]
    lines += _sum_lines(terms, labels, "terms") + [f"sum = {fmt(value)}"]
    notes = ()
    zeros = int(g[..., f].size - np.count_nonzero(g[..., f]))
    if zeros:
        after = {layer.kind if layer.kind != "pool" else f"{layer.mode}-pool"
                 for layer in model.layers[_pos(model, layer_name) + 1:]}
        why = [w for k, w in (("max-pool", "max-pooling sends it only to each window's "
                               "winner"), ("min-pool", "min-pooling sends it only to each "
                               "window's winner"), ("relu", "ReLU blocks it where its input was "
                               "negative")) if k in after]
        notes = (f"{zeros} of {g[..., f].size} values of dL/dout[:,:,{f}] are 0"
                 + (f": {' and '.join(why)}." if why else "."),)
    return Explanation(name, index, f"dL/dfilter[{di},{dj},{c},{f}] ({layer_name})",
                       "dL/dW[di,dj,c,f] = sum over regions (i,j) of region[di,dj,c] * "
                       "dL/dout[i,j,f]", tuple(lines), value, float(trace[name][index]),
                       tuple(terms), notes)


def explain(model, trace: dict, key: str, index=(), n: int = 0,
            params: dict | None = None) -> Explanation:
    """The arithmetic of ``trace[key][n, *index]`` (weight gradients have no batch axis)."""
    params = model.params() if params is None else params
    index = tuple(int(i) for i in np.atleast_1d(index)) if index != () else ()
    if key == "logits":
        key = model.layers[-1].name
    if key == "probs":
        return _probs(model, trace, key, index, n, params)
    if key == "loss":
        return _loss(model, trace, key, index, n, params)
    if key in ("dL_dout", "dout_dt", "dL_dt"):
        return _softmax_grad(model, trace, key, index, n, params)
    name, _, what = key.partition(".")
    kind = model.layer(name).kind
    if not what:
        fn = {"conv": _conv, "pool": _pool, "relu": _relu, "flatten": _flatten,
              "dense": _dense}[kind]
    elif kind == "dense":
        fn = _dense_grad
    elif kind == "conv":
        fn = _conv_grad
    elif kind == "pool" and what == "dx":
        fn = _pool_grad
    elif kind == "relu":
        fn = _relu_grad
    elif kind == "flatten":
        return _flatten_grad(model, trace, key, index, n)
    else:
        raise KeyError(f"no arithmetic for {key!r}")
    return fn(model, trace, key, index, n, params)


def _flatten_grad(model, trace, key, index, n):
    shape = trace[key].shape[1:]
    r = int(np.ravel_multi_index(index, shape))
    nxt = model.layers[_pos(model, "flatten") + 1].name
    v = float(trace[f"{nxt}.dx"][n, r])
    return Explanation(key, index, f"dL/dinput at {index} (reshaped)", "dL/dinput reshaped to "
                       f"{'x'.join(map(str, shape))}",
                       (f"= dL/dinput[{r}] of {nxt} = {fmt(v)}",), v,
                       float(trace[key][(n, *index)]), (v,), sources=((f"{nxt}.dx", (r,)),))


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
