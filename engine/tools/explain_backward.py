"""The arithmetic of one backward cell: the softmax gradients, a dense, pool, ReLU or conv
gradient, a reshaped gradient (recomputed in float64 from the trace)."""
from __future__ import annotations

import numpy as np

from convscope.engine.net import names
from convscope.engine.tools.explain_forward import (
    grad_name,
    grad_out,
    input_key,
    layer_input,
    padded,
    position,
)
from convscope.engine.tools.explain_text import SHOWN_TERMS, Explanation, fmt, sum_lines


# ---- backward -----------------------------------------------------------------------------
def softmax_grad(model, trace, name, index, n, params):
    (k,) = index
    c = int(trace[names.LABELS][n])
    out = trace[names.PROBS][n].astype(np.float64)
    oc, ok = out[c], out[k]
    oc_safe = max(oc, float(np.finfo(np.float32).tiny))  # as the trace: never -1/0
    if name == "dL_dout":
        value = -1.0 / oc_safe if k == c else 0.0
        lines = ((f"k = label {c}: dL/dout[{c}] = -1 / out[{c}] = -1 / {fmt(oc)} = {fmt(value)}",)
                 if k == c else (f"k = {k} is not the label {c}: L = -log(out[{c}]) does not "
                                 f"depend on out[{k}], so dL/dout[{k}] = 0",))
        return Explanation(name, index, f"dL/dout[{k}]", "dL/dout[k] = -1/out[label] if k is "
                           "the label, else 0", lines, value, float(trace[name][n, k]), (oc,),
                           sources=((names.PROBS, (c,)),))
    if name == "dout_dt":
        value = oc * (1 - oc) if k == c else -oc * ok
        lines = ((f"k = label: out[{c}] * (1 - out[{c}]) = {fmt(oc)} * {fmt(1 - oc)} "
                  f"= {fmt(value)}",) if k == c else
                 (f"k != label: -out[{c}] * out[{k}] = -{fmt(oc)} * {fmt(ok)} = {fmt(value)}",))
        lines += ("(the notes: -e^tc e^tk / S^2 for k != c, e^tc (S - e^tc) / S^2 for k = c)",)
        return Explanation(name, index, f"dout[{c}]/dt[{k}]", "dout[c]/dt[k] = out[c](1-out[c]) "
                           "if k = c, else -out[c] out[k]", lines, value,
                           float(trace[name][n, k]), (oc, ok),
                           sources=((names.PROBS, (c,)), (names.PROBS, (k,))))
    d_out = -1.0 / oc_safe
    dodt = oc * (1 - oc) if k == c else -oc * ok
    value = d_out * dodt
    lines = (f"dL/dout[{c}] * dout[{c}]/dt[{k}] = {fmt(d_out)} * {fmt(dodt)} = {fmt(value)}",
             f"= out[{k}] - onehot[{k}] = {fmt(ok)} - {1 if k == c else 0} = "
             f"{fmt(ok - (k == c))}")
    return Explanation(name, index, f"dL/dt[{k}]", "dL/dt = dL/dout[label] * dout[label]/dt "
                       "= out - onehot(label)", lines, value, float(trace[name][n, k]),
                       (d_out, dodt), sources=(("dL_dout", (c,)), ("dout_dt", (k,))))


def dense_grad(model, trace, name, index, n, params):
    layer, what = name.split(".")
    g = grad_out(model, trace, layer).astype(np.float64)  # (N, n_out)
    x = trace[input_key(model, layer)].astype(np.float64)  # (N, n_in)
    gname = grad_name(model, trace, layer)
    gkey = names.DL_DT if gname == "dL/dt" else layer
    nb = len(g)
    mean = f" / {nb} (batch mean)" if nb > 1 else ""
    if what == "dW":
        r, k = index
        terms = x[:, r] * g[:, k]
        value = float(terms.sum())
        lines = [f"x[{r}] * {gname}[{k}] = {fmt(x[s, r])} * {fmt(g[s, k] * nb)}{mean} = "
                 f"{fmt(terms[s])}" for s in range(nb)][:SHOWN_TERMS]
        src = input_key(model, layer)
        if src == "flatten":  # which pooled value x[r] is
            pooled = input_key(model, "flatten")
            cell = np.unravel_index(r, trace[pooled].shape[1:])
            lines.append(f"(x[{r}] is {pooled}[{', '.join(str(int(v)) for v in cell)}])")
        total = (f"sum over the batch = {fmt(value)}",) if nb > 1 else ()
        return Explanation(name, index, f"dL/dw[{r},{k}] ({layer})", f"dL/dw[r,k] = x[r] * "
                           f"{gname}[k]", tuple(lines) + total, value,
                           float(trace[name][r, k]), tuple(terms),
                           sources=((input_key(model, layer), (r,)), (gkey, (k,))))
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
    lines = sum_lines(terms, labels, "products") + [f"sum = {fmt(value)}"]
    if nb > 1:
        lines.append(f"({gname} here includes the 1/{nb} of the batch mean)")
    return Explanation(name, index, f"dL/dinput[{r}] ({layer})", f"dL/dinput[r] = sum over k "
                       f"of W[r,k] * {gname}[k]", tuple(lines), value, float(trace[name][n, r]),
                       tuple(terms), sources=tuple((gkey, (k,)) for k in range(len(w))))


def pool_grad(model, trace, name, index, n, params):
    layer_name = name.split(".")[0]
    layer = model.layer(layer_name)
    i, j, c = index
    k, s = layer.size, layer.stride
    g = grad_out(model, trace, layer_name).astype(np.float64)[n]  # (Ho, Wo, C)
    ho, wo = g.shape[0], g.shape[1]
    gkey = names.dx_key(model.layers[position(model, layer_name) + 1].name)
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
            mask = trace[names.mask_key(layer_name)][n, wi * s:wi * s + k, wj * s:wj * s + k, c]
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


def relu_grad(model, trace, name, index, n, params):
    layer_name = name.split(".")[0]
    x = float(trace[input_key(model, layer_name)][(n, *index)])
    g = float(grad_out(model, trace, layer_name)[(n, *index)])
    value = g if x > 0 else 0.0
    return Explanation(name, index, f"{layer_name} gradient at {index}",
                       "dL/dx = dL/dout if x > 0 else 0",
                       (f"x = {fmt(x)} -> {'passes' if x > 0 else 'blocked'}: {fmt(value)}",),
                       value, float(trace[name][(n, *index)]), (x, g))


def conv_grad(model, trace, name, index, n, params):
    layer_name, what = name.split(".")
    layer = model.layer(layer_name)
    k, s, p = layer.k, layer.stride, layer.pad
    x = padded(layer, layer_input(model, trace, layer_name).astype(np.float64))  # (N,Hp,Wp,C)
    g = grad_out(model, trace, layer_name).astype(np.float64)  # (N, Ho, Wo, C_out)
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
        lines = sum_lines(terms, labels, "products") + [f"sum = {fmt(value)}"]
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
    lines += sum_lines(terms, labels, "terms") + [f"sum = {fmt(value)}"]
    notes = ()
    zeros = int(g[..., f].size - np.count_nonzero(g[..., f]))
    if zeros:
        after = {layer.kind if layer.kind != "pool" else f"{layer.mode}-pool"
                 for layer in model.layers[position(model, layer_name) + 1:]}
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


def flatten_grad(model, trace, key, index, n, params):
    shape = trace[key].shape[1:]
    r = int(np.ravel_multi_index(index, shape))
    nxt = model.layers[position(model, "flatten") + 1].name
    v = float(trace[names.dx_key(nxt)][n, r])
    return Explanation(key, index, f"dL/dinput at {index} (reshaped)", "dL/dinput reshaped to "
                       f"{'x'.join(map(str, shape))}",
                       (f"= dL/dinput[{r}] of {nxt} = {fmt(v)}",), v,
                       float(trace[key][(n, *index)]), (v,), sources=((names.dx_key(nxt), (r,)),))
