"""The Inspector's stages as plain data: each traced array laid out as tiles (n, h, w) with
the maps between a drawn cell (tile, row, col) and the array element it shows, in the order of
the pass and with the design notes' names. No widgets here (the view is ``inspector.py``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from convscope.engine.net.model import Model
from convscope.engine.tools.explain import Explanation, StepTrace, explain, explain_update
from convscope.visualizer.probs import short_name

SECTIONS = {"forward": "Forward pass", "backward": "Backward pass",
            "update": "Update: w -= lr * dL/dw"}

# ---- layouts: an array as tiles (n, h, w), and the cell <-> element index maps -----------
@dataclass
class Layout:
    maps: np.ndarray  # (n, h, w) float32, NaN = blank
    to_index: Callable[[int, int, int], tuple]  # tile, row, col -> element index
    to_cell: Callable[[tuple], tuple | None]  # element index -> tile, row, col
    cols: int = 8
    tile_labels: list = field(default_factory=list)
    row_labels: list = field(default_factory=list)
    col_labels: list = field(default_factory=list)


def image_layout(a: np.ndarray) -> Layout:
    """(h, w) -> one tile."""
    return Layout(a[None].astype(np.float32), lambda k, i, j: (i, j),
                  lambda ix: (0, ix[0], ix[1]), 1)


def maps_layout(a: np.ndarray, name: str = "ch") -> Layout:
    """(h, w, c) -> c tiles."""
    c = a.shape[2]
    return Layout(np.ascontiguousarray(a.transpose(2, 0, 1), np.float32),
                  lambda k, i, j: (i, j, k), lambda ix: (ix[2], ix[0], ix[1]), min(c, 8),
                  [f"{name} {k}" for k in range(c)])


def auto_layout(a: np.ndarray) -> Layout:
    """Maps (h, w, c) as tiles, a vector as a strip of 32."""
    return maps_layout(a) if a.ndim == 3 else image_layout(a) if a.ndim == 2 else \
        vector_layout(a, 32)


def vector_layout(a: np.ndarray, width: int, labels=()) -> Layout:
    """(n,) -> one strip, ``width`` cells a row."""
    n = len(a)
    width = max(1, min(width, n))
    rows = -(-n // width)
    flat = np.full(rows * width, np.nan, np.float32)
    flat[:n] = a
    return Layout(flat.reshape(1, rows, width), lambda k, i, j: (i * width + j,),
                  lambda ix: (0, ix[0] // width, ix[0] % width), 1, col_labels=list(labels))


def kernel_layout(w: np.ndarray, cols: int = 4) -> Layout:
    """(k, k, C_in, C_out) -> one k x k tile per (C_in, C_out)."""
    k, _, cin, cout = w.shape
    maps = w.transpose(2, 3, 0, 1).reshape(cin * cout, k, k).astype(np.float32)
    if cin == 1:
        names, rows = [f"filter {f}" for f in range(cout)], []
    else:  # a row per input channel, a column per filter
        names, rows = [f"f{f}" if c == 0 else "" for c in range(cin) for f in range(cout)], \
            [f"in {c}" for c in range(cin)]
    return Layout(maps, lambda t, i, j: (i, j, t // cout, t % cout),
                  lambda ix: (ix[2] * cout + ix[3], ix[0], ix[1]),
                  min(cols, cout) if cin == 1 else cout, names, rows)


def class_layout(w: np.ndarray, shape: tuple) -> Layout:
    """Dense weights (H*W*C, n_out) -> n_out rows of C tiles (H, W): one image per class."""
    h, wd, c = shape
    n_out = w.shape[1]
    maps = w.reshape(h, wd, c, n_out).transpose(3, 2, 0, 1).reshape(n_out * c, h, wd)

    def to_index(t, i, j):
        return int(np.ravel_multi_index((i, j, t % c), shape)), t // c

    def to_cell(ix):
        i, j, ch = np.unravel_index(ix[0], shape)
        return int(ix[1] * c + ch), int(i), int(j)

    return Layout(maps.astype(np.float32), to_index, to_cell, c,
                  row_labels=[str(k) for k in range(n_out)])


def matrix_layout(w: np.ndarray, chunk: int = 400) -> Layout:
    """(n_in, n_out) -> a row per output; the inputs in equal bands of at most ``chunk``
    columns, one tile per band, stacked (a 1568-wide matrix stays on screen: 4 of 392)."""
    n_in, n_out = w.shape
    bands = -(-n_in // min(chunk, n_in))
    chunk = -(-n_in // bands)
    padded = np.full((bands * chunk, n_out), np.nan, np.float32)
    padded[:n_in] = w
    maps = padded.reshape(bands, chunk, n_out).transpose(0, 2, 1)  # (bands, n_out, chunk)
    return Layout(np.ascontiguousarray(maps), lambda k, i, j: (k * chunk + j, i),
                  lambda ix: (ix[0] // chunk, ix[1], ix[0] % chunk), 1,
                  [f"inputs {k * chunk}..{min(n_in, (k + 1) * chunk) - 1}" if bands > 1 else ""
                   for k in range(bands)])


# ---- the stages of one step ----------------------------------------------------------------
@dataclass
class Stage:
    key: str  # unique id of the grid
    section: str  # forward, backward, update
    title: str
    note: str
    layout: Layout
    explain: Callable[[tuple], Explanation]
    trace_keys: tuple = ()  # keys whose cells this grid shows (for outlining sources)
    style: str = "diverging"  # diverging, gray, mask
    cell: tuple = (6, 6)  # cell width, height in pixels
    numbers: bool = False
    window: int = 0
    group: str = ""  # stages with one group share a card (before / after / change)
    levels: tuple | None = None


def _dims(shape) -> str:
    return "x".join(str(s) for s in shape)


def _map_cell(h: int) -> int:
    return 3 if h > 20 else 6 if h > 9 else 10


def build_stages(model: Model, st: StepTrace, n: int = 0) -> list[Stage]:
    """Every stage of the step ``st`` of ``model`` (whose structure, not weights, is used)."""
    tr, before = st.trace, st.params_before
    label = int(tr["labels"][n])
    classes = model.classes  # a strip of at most 13 cells a row; names when it is one row
    strip = classes if classes <= 13 else -(-classes // -(-classes // 13))
    digits = [short_name(c, 6) for c in model.class_names] if classes <= 13 else []

    def ex(key):
        return lambda ix: explain(model, tr, key, ix, n, before)

    stages = [Stage("input", "forward", f"input x ({_dims(tr['input'].shape[1:])})",
                    "pixel / 255 - 0.5", image_layout(tr["input"][n]),
                    lambda ix: _pixel(tr, ix, n), ("input",), "gray", (6, 6),
                    levels=(-0.5, 0.5))]
    prev_shape = tr["input"].shape[1:]
    layers = model.layers
    for pos, layer in enumerate(layers):
        out = tr[layer.name][n]
        last = pos == len(layers) - 1
        if layer.kind == "conv":
            stages.append(Stage(layer.name, "forward", f"{layer.name}: conv outputs "
                                f"({_dims(out.shape)})", f"out[i,j,f] = sum({layer.k}x{layer.k}"
                                " region * filter f)", maps_layout(out, "filter"), ex(layer.name),
                                (layer.name,), cell=(_map_cell(out.shape[0]),) * 2))
        elif layer.kind == "relu":
            stages.append(Stage(layer.name, "forward", f"{layer.name}: max(0, x) "
                                f"({_dims(out.shape)})", "negative values become 0",
                                auto_layout(out), ex(layer.name), (layer.name,),
                                cell=(_map_cell(out.shape[0]) if out.ndim == 3 else 10,) * 2))
        elif layer.kind == "pool":
            src = tr[layers[pos - 1].name][n]
            if f"{layer.name}.mask" in tr:
                mask = tr[f"{layer.name}.mask"][n].astype(np.float32)
                s = layer.stride
                stages.append(Stage(
                    f"{layer.name}.mask", "forward", f"{layer.name}: argmax masks "
                    f"({_dims(mask.shape)})", f"the one winner of each {layer.size}x{layer.size}"
                    " window (marked); only it will receive gradient", maps_layout(mask),
                    lambda ix, name=layer.name, s=s: explain(model, tr, name,
                                                             (ix[0] // s, ix[1] // s, ix[2]),
                                                             n, before),
                    (f"{layer.name}.mask", layers[pos - 1].name), "mask",
                    (_map_cell(src.shape[0]),) * 2, levels=(0.0, 1.0)))
            stages.append(Stage(layer.name, "forward", f"{layer.name}: pooled "
                                f"({_dims(out.shape)})", f"{layer.mode} of each {layer.size}x"
                                f"{layer.size} window", maps_layout(out), ex(layer.name),
                                (layer.name,), cell=(_map_cell(out.shape[0]),) * 2))
        elif layer.kind == "flatten":
            width = prev_shape[1] * prev_shape[2] if len(prev_shape) == 3 else 64
            stages.append(Stage("flatten", "forward", f"flattened x ({out.size})",
                                f"one row per pooled row: ({_dims(prev_shape[1:])}) values "
                                "(col, channel) side by side", vector_layout(out, width),
                                ex("flatten"), ("flatten",), cell=(6, 6)))
        elif layer.kind == "dense":
            title = f"logits t ({out.size})" if last else f"{layer.name} ({out.size})"
            stages.append(Stage("logits" if last else layer.name, "forward", title,
                                "t = x . w + b", vector_layout(out, strip if last else 32,
                                                               digits if last else ()),
                                ex(layer.name), ("logits", layer.name) if last else
                                (layer.name,), cell=(56, 24) if last else (10, 10),
                                numbers=last))
        prev_shape = out.shape
    vec = dict(cell=(56, 24), numbers=True)
    stages += [
        Stage("probs", "forward", f"softmax out ({classes})", "out[k] = exp(t[k]) / sum of "
              "exp(t)", vector_layout(tr["probs"][n], strip, digits), ex("probs"), ("probs",),
              **vec),
        Stage("loss", "forward", "loss", f"L = -log(out[{label}])",
              vector_layout(tr["loss"][n:n + 1], 1), lambda ix: explain(
                  model, tr, "loss", (), n, before), ("loss",), **vec),
        Stage("dL_dout", "backward", f"dL/dout ({classes})", f"only the label entry is "
              f"non-zero: -1 / out[{label}]", vector_layout(tr["dL_dout"][n], strip, digits),
              ex("dL_dout"),
              ("dL_dout",), **vec),
        Stage("dout_dt", "backward", f"dout[{label}]/dt ({classes})", "out[c](1 - out[c]) at "
              "the label, -out[c] out[k] elsewhere", vector_layout(tr["dout_dt"][n], strip,
                                                                   digits),
              ex("dout_dt"), ("dout_dt",), **vec),
        Stage("dL_dt", "backward", f"dL/dt ({classes})", "dL/dout * dout/dt = out - "
              "onehot(label)", vector_layout(tr["dL_dt"][n], strip, digits), ex("dL_dt"),
              ("dL_dt",), **vec)]
    for pos in range(len(layers) - 1, -1, -1):
        stages += _backward_stages(model, tr, layers, pos, n, ex)
    stages += _update_stages(model, st, tr)
    for s in stages:
        if s.levels is None:
            s.levels = _symmetric(s.layout.maps)
    _share_levels(stages)
    return stages


def _backward_stages(model, tr, layers, pos, n, ex) -> list[Stage]:
    layer = layers[pos]
    name = layer.name
    out = []
    if layer.kind == "dense":
        dw = tr[f"{name}.dW"]
        prev = layers[pos - 1] if pos else None
        pooled = tr[layers[pos - 2].name].shape[1:] if prev is not None and \
            prev.kind == "flatten" and pos >= 2 else None
        if pooled is not None and len(pooled) == 3 and dw.shape[1] <= 16:
            lay, cell, title = class_layout(dw, pooled), (3, 3), \
                f"dL/dw ({_dims(dw.shape)}) as {dw.shape[1]} class images"
        else:
            lay, cell, title = matrix_layout(dw), (2, 6), f"dL/dw ({_dims(dw.shape)})"
        last = pos == len(layers) - 1
        g = "dL/dt" if last else f"dL/d{name}"
        out.append(Stage(f"{name}.dW", "backward", f"{name}: {title}",
                         f"dL/dw[r,k] = x[r] * {g}[k]  (one row per class, one tile per "
                         "channel)" if lay.row_labels else f"x[r] * {g}[k]", lay,
                         ex(f"{name}.dW"), (f"{name}.dW",), cell=cell))
        lay, cell, numbers = _small_vector(tr[f"{name}.db"], last)
        out.append(Stage(f"{name}.db", "backward", f"{name}: dL/db ({dw.shape[1]})",
                         f"dL/db = {g}", lay, ex(f"{name}.db"), (f"{name}.db",), cell=cell,
                         numbers=numbers))
        if prev is not None and prev.kind == "flatten" and "flatten.dx" in tr:
            dx = tr["flatten.dx"][n]
            out.append(Stage("flatten.dx", "backward", f"{name}: dL/dinput reshaped to "
                             f"{_dims(dx.shape)}", "dL/dinput[r] = sum over k of w[r,k] * "
                             f"{g}[k]", maps_layout(dx) if dx.ndim == 3 else
                             vector_layout(dx, 32), ex("flatten.dx"),
                             ("flatten.dx", f"{name}.dx"), cell=(_map_cell(dx.shape[0]),) * 2))
        elif f"{name}.dx" in tr:
            dx = tr[f"{name}.dx"][n]
            out.append(Stage(f"{name}.dx", "backward", f"{name}: dL/dinput ({dx.size})",
                             f"sum over k of w[r,k] * {g}[k]", vector_layout(dx, 32),
                             ex(f"{name}.dx"), (f"{name}.dx",), cell=(10, 10)))
    elif layer.kind in ("pool", "relu") and f"{name}.dx" in tr:
        dx = tr[f"{name}.dx"][n]
        title = (f"{name}: pool-routed gradient ({_dims(dx.shape)})" if layer.kind == "pool"
                 else f"{name}: gradient through max(0, x) ({_dims(dx.shape)})")
        note = ("zero except at each window's winner" if layer.kind == "pool" and
                layer.mode != "avg" else "each window's gradient shared equally"
                if layer.kind == "pool" else "passes where x > 0, else 0")
        out.append(Stage(f"{name}.dx", "backward", title, note, auto_layout(dx),
                         ex(f"{name}.dx"), (f"{name}.dx",),
                         cell=(_map_cell(dx.shape[0]) if dx.ndim == 3 else 10,) * 2))
    elif layer.kind == "conv":
        dw = tr[f"{name}.dW"]
        out.append(Stage(f"{name}.dW", "backward", f"{name}: dL/dfilters ({_dims(dw.shape)})",
                         "sum over every region of region value * dL/dout", kernel_layout(dw),
                         ex(f"{name}.dW"), (f"{name}.dW",), cell=_kernel_cell(dw),
                         numbers=_kernel_cell(dw)[0] >= 30))
        if f"{name}.db" in tr:
            lay, cell, numbers = _small_vector(tr[f"{name}.db"])
            out.append(Stage(f"{name}.db", "backward", f"{name}: dL/db ({dw.shape[3]})",
                             "sum of dL/dout over each map", lay, ex(f"{name}.db"),
                             (f"{name}.db",), cell=cell, numbers=numbers))
        if f"{name}.dx" in tr:
            dx = tr[f"{name}.dx"][n]
            out.append(Stage(f"{name}.dx", "backward", f"{name}: dL/dinput "
                             f"({_dims(dx.shape)})", "sum of w * dL/dout over the outputs fed",
                             maps_layout(dx), ex(f"{name}.dx"), (f"{name}.dx",),
                             cell=(_map_cell(dx.shape[0]),) * 2))
    return out


def _kernel_cell(w) -> tuple:
    """Cells big enough for numbers when the filters are few, else as big as fits."""
    k, _, cin, cout = w.shape
    if cin == 1 and cout <= 16:
        return (52, 22)
    c = max(2, min(8, 640 // (cout * (k + 1))))
    return (c, c)


def _small_vector(a: np.ndarray, classes: bool = False):
    """(layout, cell, numbers) for a bias or its gradient: numbers when there are few."""
    if classes and len(a) == 10:
        return vector_layout(a, 10, [str(k) for k in range(10)]), (56, 24), True
    if len(a) <= 16:
        return vector_layout(a, 8), (52, 22), True
    return vector_layout(a, 32), (10, 10), False


def _update_stages(model, st: StepTrace, tr) -> list[Stage]:
    out = []
    for key, w0 in st.params_before.items():
        w1 = st.params_after[key]
        grad = tr.get(key.replace(".", ".d"))
        if grad is None:
            continue
        name = key.split(".")[0]
        layer = model.layer(name)
        parts = [("before", w0), ("after", w1), ("change", w1.astype(np.float64) - w0)]
        for part, arr in parts:
            if arr.ndim == 4:
                lay, cell = kernel_layout(arr), _kernel_cell(arr)
                numbers = cell[0] >= 30
            elif arr.ndim == 2:
                shape = _dense_map_shape(model, tr, model.layers.index(layer))
                lay = class_layout(arr, shape) if shape and arr.shape[1] <= 16 else \
                    matrix_layout(arr)
                cell, numbers = ((2, 2) if shape and arr.shape[1] <= 16 else (1, 4)), False
            else:
                lay, cell, numbers = _small_vector(arr, layer is model.layers[-1])
            out.append(Stage(
                f"update:{key}:{part}", "update", f"{key} {part}",
                {"before": f"the weights the forward pass used ({_dims(arr.shape)})",
                 "after": f"after w -= {st.lr:g} * dL/dw", "change": "after - before = "
                 f"-{st.lr:g} * dL/dw"}[part], lay,
                lambda ix, key=key, grad=grad: explain_update(key, ix, st.params_before,
                                                              st.params_after, grad, st.lr,
                                                              st.momentum),
                (key,) if part == "before" else (), cell=cell, numbers=numbers, group=key))
    return out


def _dense_map_shape(model, tr, pos):
    if pos >= 2 and model.layers[pos - 1].kind == "flatten":
        shape = tr[model.layers[pos - 2].name].shape[1:]
        return shape if len(shape) == 3 else None
    return None


def _pixel(tr, ix, n) -> Explanation:
    v = float(tr["input"][(n, *ix)])
    raw = round((v + 0.5) * 255)
    return Explanation("input", tuple(ix), f"input pixel at row {ix[0]}, col {ix[1]}",
                       "x = pixel / 255 - 0.5", (f"{raw} / 255 - 0.5 = {v:.4g}",), v, v)


def _symmetric(maps) -> tuple:
    m = float(np.nanmax(np.abs(maps))) if np.isfinite(maps).any() else 0.0
    m = m if m > 0 else 1.0
    return (-m, m)


def _share_levels(stages) -> None:
    """Before and after of one weight share one colour scale."""
    groups: dict = {}
    for s in stages:
        if s.group and not s.key.endswith(":change"):
            groups.setdefault(s.group, []).append(s)
    for members in groups.values():
        m = max(s.levels[1] for s in members)
        for s in members:
            s.levels = (-m, m)
