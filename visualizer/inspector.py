"""The Inspector: one sample's forward and backward pass, number by number.

After a single-sample step (a ``StepTrace`` from ``engine.explain.traced_step``) it shows the
pass in order, each stage a picture with its numbers, in the design notes' names: forward
(input -> conv -> pooled with argmax masks -> flattened -> logits t -> softmax out -> loss),
backward (dL/dout, dout/dt, dL/dt, dL/dw, dL/db, dL/dinput, the pool-routed gradient,
dL/dfilters) and the update (w -= lr * dL/dw: before, after, change). Clicking a cell shows
its arithmetic with the actual numbers (``engine.explain``) and outlines the cells it came
from. The gradient check runs on a pool thread, never on the GUI thread.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PyQt5.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QFontDatabase
from PyQt5.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.explain import Explanation, StepTrace, explain, explain_update
from engine.gradcheck import gradcheck
from engine.model import Model
from visualizer import theme as themes
from visualizer.cell_grid import CellGrid

PASS_THRESHOLD = 1e-6
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


def matrix_layout(w: np.ndarray, chunk: int = 512) -> Layout:
    """(n_in, n_out) -> a row per output; the inputs in bands of ``chunk`` columns, one tile
    per band, stacked (a 1568-wide matrix stays on screen)."""
    n_in, n_out = w.shape
    chunk = min(chunk, n_in)
    bands = -(-n_in // chunk)
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
    digits = [str(k) for k in range(10)]

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
                                "t = x . w + b", vector_layout(out, 10 if last else 32,
                                                               digits if last else ()),
                                ex(layer.name), ("logits", layer.name) if last else
                                (layer.name,), cell=(56, 24) if last else (10, 10),
                                numbers=last))
        prev_shape = out.shape
    vec = dict(cell=(56, 24), numbers=True)
    stages += [
        Stage("probs", "forward", "softmax out (10)", "out[k] = exp(t[k]) / sum of exp(t)",
              vector_layout(tr["probs"][n], 10, digits), ex("probs"), ("probs",), **vec),
        Stage("loss", "forward", "loss", f"L = -log(out[{label}])",
              vector_layout(tr["loss"][n:n + 1], 1), lambda ix: explain(
                  model, tr, "loss", (), n, before), ("loss",), **vec),
        Stage("dL_dout", "backward", "dL/dout (10)", f"only the label entry is non-zero: "
              f"-1 / out[{label}]", vector_layout(tr["dL_dout"][n], 10, digits), ex("dL_dout"),
              ("dL_dout",), **vec),
        Stage("dout_dt", "backward", f"dout[{label}]/dt (10)", "out[c](1 - out[c]) at the label"
              ", -out[c] out[k] elsewhere", vector_layout(tr["dout_dt"][n], 10, digits),
              ex("dout_dt"), ("dout_dt",), **vec),
        Stage("dL_dt", "backward", "dL/dt (10)", "dL/dout * dout/dt = out - onehot(label)",
              vector_layout(tr["dL_dt"][n], 10, digits), ex("dL_dt"), ("dL_dt",), **vec)]
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


# ---- the gradient check off the GUI thread ----------------------------------------------
class _Signals(QObject):
    done = pyqtSignal(object)  # the gradcheck report, or {"error": str}


class GradcheckTask(QRunnable):
    """gradcheck(model, x, labels) on a pool thread; the result comes back as a signal."""

    def __init__(self, model: Model, x, labels, grad_hook=None, max_entries=100):
        super().__init__()
        self.signals = _Signals()
        self.model, self.x, self.labels = model, x, labels
        self.grad_hook, self.max_entries = grad_hook, max_entries

    def run(self):
        try:
            report = gradcheck(self.model, self.x, self.labels, grad_hook=self.grad_hook,
                               max_entries=self.max_entries, threshold=PASS_THRESHOLD)
        except Exception as e:  # reported in the table, never raised in a pool thread
            report = {"error": f"{type(e).__name__}: {e}"}
        self.signals.done.emit(report)


# ---- the view -------------------------------------------------------------------------------
def _summary(stage: Stage) -> str:
    m = stage.layout.maps
    vals = m[np.isfinite(m)]
    if vals.size <= 10 or stage.style == "mask":
        return ""
    nz = int(np.count_nonzero(vals))
    text = f"min {vals.min():.4g}   max {vals.max():.4g}"
    if nz < 0.9 * vals.size:
        text += f"   {nz} of {vals.size} non-zero"
    return text


def _fit_cols(stage: Stage, width: int) -> int:
    """Tiles per row: the layout's choice, fewer when the width is short (never for class
    rows or input-channel rows, whose rows mean something)."""
    lay = stage.layout
    if lay.row_labels:
        return lay.cols
    tile = lay.maps.shape[2] * stage.cell[0] + 6
    return max(1, min(lay.cols, width // tile))


def _per_row(stages: list[Stage], width: int = 720) -> int:
    """How many grids of a group fit side by side in ``width`` pixels."""
    n, h, w = stages[0].layout.maps.shape
    cols = min(stages[0].layout.cols, n)
    grid = cols * (w * stages[0].cell[0] + 6) + (22 if stages[0].layout.row_labels else 0)
    one = max(240, grid)  # the min / max line under a grid is about 240 pixels wide
    return max(1, min(len(stages), (width - 40) // (one + 24)))


class StageCard(QFrame):
    """One stage, or a weight's before / after / change: title, formula, grid(s), summary."""

    def __init__(self, stages: list[Stage], on_click, width: int = 640, parent=None):
        super().__init__(parent)
        self.setObjectName("stageCard")
        self.keys = [s.key for s in stages]
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        self.title_label = QLabel()
        self.title_label.setTextFormat(Qt.PlainText)
        bold = QFont(self.font())
        bold.setBold(True)
        bold.setPointSizeF(bold.pointSizeF() + 1)
        self.title_label.setFont(bold)
        self.note_label = QLabel()
        self.note_label.setObjectName("muted")
        layout.addWidget(self.title_label)
        layout.addWidget(self.note_label)
        grouped = len(stages) > 1
        row = QGridLayout()
        row.setHorizontalSpacing(18)
        row.setVerticalSpacing(8)
        per_row = _per_row(stages, width)
        self.grids: dict[str, CellGrid] = {}
        self.captions: dict[str, QLabel] = {}
        self.summaries: dict[str, QLabel] = {}
        for n, s in enumerate(stages):
            box = QVBoxLayout()
            box.setSpacing(2)
            if grouped:
                cap = QLabel()
                cap.setObjectName("caption")
                self.captions[s.key] = cap
                box.addWidget(cap)
            grid = CellGrid()
            grid.clicked.connect(lambda k, i, j, key=s.key: on_click(key, k, i, j))
            self.grids[s.key] = grid
            box.addWidget(grid)
            summary = QLabel()
            summary.setObjectName("muted")
            self.summaries[s.key] = summary
            box.addWidget(summary)
            box.addStretch(1)
            row.addLayout(box, n // per_row, n % per_row)
        row.setColumnStretch(per_row, 1)
        layout.addLayout(row)

    def update_stages(self, stages: list[Stage], luts: dict, width: int = 640) -> None:
        """Redraw from ``stages``; tiles wrap to fit ``width`` pixels (not class rows)."""
        first = stages[0]
        if first.group:
            self.title_label.setText(f"{first.group}: before and after the step")
            self.note_label.setText(f"{stages[1].note[len('after '):]};  change = after - "
                                    "before" if len(stages) > 1 else first.note)
        else:
            self.title_label.setText(first.title)
            self.note_label.setText(first.note)
        for s in stages:
            lay = s.layout
            cell, cols = s.cell, _fit_cols(s, width)
            room = width - (40 if lay.row_labels else 0)
            if not s.numbers and cols * (lay.maps.shape[2] * cell[0] + 6) > room:
                c = max(1, (room // cols - 6) // lay.maps.shape[2])  # still too wide: shrink
                cell = (c, c)
            self.grids[s.key].set_data(lay.maps, luts[s.style], s.levels, numbers=s.numbers,
                                       tile_labels=lay.tile_labels, row_labels=lay.row_labels,
                                       col_labels=lay.col_labels, window=s.window,
                                       cell=cell[0], cell_h=cell[1], cols=cols)
            if s.key in self.captions:
                self.captions[s.key].setText(s.key.rsplit(":", 1)[1])
            summary = _summary(s)
            self.summaries[s.key].setText(summary)
            self.summaries[s.key].setVisible(bool(summary))


class InspectorView(QWidget):
    """Shows a StepTrace; ``select(key, index)`` explains one cell (clicks call it)."""

    cell_selected = pyqtSignal(str, object)  # stage key, element index
    gradcheck_finished = pyqtSignal(object)  # the gradcheck report

    def __init__(self, parent=None):
        super().__init__(parent)
        self.step_trace: StepTrace | None = None
        self.model: Model | None = None
        self.stages: dict[str, Stage] = {}
        self.cards: list[StageCard] = []
        self.grids: dict[str, CellGrid] = {}
        self.selection: tuple = ("loss", (0,))
        self.explanation: Explanation | None = None
        self.grad_hook = None  # optional: alters analytic gradients before the check (tests)
        self.gradcheck_entries = 100
        self.gradcheck_report: dict | None = None
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._tasks: list[GradcheckTask] = []
        self.theme = themes.DARK
        self._build()
        self.apply_theme(themes.DARK)

    def _build(self) -> None:
        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        mono.setFamily("DejaVu Sans Mono")  # falls back to the system's fixed font
        mono.setStyleHint(QFont.Monospace)
        mono.setPointSizeF(9)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.content = QWidget()
        self.content_layout = QVBoxLayout(self.content)
        self.content_layout.setSpacing(8)
        self.placeholder = QLabel("Press Step one sample (Right arrow): that sample's forward "
                                  "and backward pass appears here, number by number.")
        self.placeholder.setWordWrap(True)
        self.content_layout.addWidget(self.placeholder)
        self.content_layout.addStretch(1)
        self.scroll.setWidget(self.content)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(6, 6, 6, 6)
        self.header_label = QLabel("No step yet")
        self.header_label.setWordWrap(True)
        self.header_label.setTextFormat(Qt.RichText)
        self.arithmetic_label = QLabel("Arithmetic: click any cell")
        self.arithmetic_label.setObjectName("sectionTitle")
        self.arithmetic_text = QPlainTextEdit()
        self.arithmetic_text.setReadOnly(True)
        self.arithmetic_text.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.arithmetic_text.setFont(mono)
        self.gradcheck_button = QPushButton("Gradient check this sample")
        self.gradcheck_button.setToolTip("Compare every analytic gradient with a centred "
                                         "numeric gradient (float64 copy of the weights)")
        self.gradcheck_button.setEnabled(False)
        self.gradcheck_button.clicked.connect(self.run_gradcheck)
        self.gradcheck_status = QLabel("")
        self.gradcheck_status.setWordWrap(True)
        self.gradcheck_table = QTableWidget(0, 3)
        self.gradcheck_table.setHorizontalHeaderLabels(["layer", "max relative error",
                                                        f"< {PASS_THRESHOLD:g}?"])
        self.gradcheck_table.verticalHeader().setVisible(False)
        self.gradcheck_table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.gradcheck_table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.gradcheck_table.setMaximumHeight(180)
        self.gradcheck_table.hide()
        self.window_button = QPushButton("Open in its own window")
        self.window_button.setToolTip("More room for the pass: the inspector in a window of "
                                      "its own (close it to put it back)")
        self.window_button.clicked.connect(self.toggle_window)
        top = QHBoxLayout()
        top.addWidget(self.header_label, 1)
        top.addWidget(self.window_button, 0, Qt.AlignTop)
        side_layout.addLayout(top)
        side_layout.addWidget(self.arithmetic_label)
        side_layout.addWidget(self.arithmetic_text, 1)
        for w in (self.gradcheck_button, self.gradcheck_status, self.gradcheck_table):
            side_layout.addWidget(w)

        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(self.scroll)
        self.splitter.addWidget(side)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([780, 500])
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(60)
        self._fit_timer.timeout.connect(self._fit)
        self._width = 640  # pixels the stage grids may use
        self._fitted = False
        self._home: QScrollArea | None = None  # the tab's scroll area while in a window

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_timer.start()

    def _fit(self) -> None:
        """Side by side when wide, the arithmetic below the stages when narrow; tiles wrap."""
        wide = self.width() >= 900
        orientation = Qt.Horizontal if wide else Qt.Vertical
        if self.splitter.orientation() != orientation or not self._fitted:
            self._fitted = True
            self.splitter.setOrientation(orientation)
            total = self.width() if wide else self.height()
            side = min(500, int(total * 0.4)) if wide else int(total * 0.45)
            self.splitter.setSizes([total - side, side])
        if self.explanation is not None:  # re-wrap the arithmetic to the new width
            self.arithmetic_text.setPlainText(self.explanation.text(self._text_columns()))
        width = max(200, self.scroll.viewport().width() - 60)
        if abs(width - self._width) > 8:
            self._width = width
            if self.step_trace is not None:
                self._rebuild_cards(list(self.stages.values()))
                self._refresh_cards()
                self.select(*self.selection)

    # ---- theme --------------------------------------------------------------------------
    def apply_theme(self, theme) -> None:
        self.theme = theme
        gray = np.zeros((256, 4), np.uint8)
        lo, hi = QColor(theme.gray[0]), QColor(theme.gray[1])
        for c, (a, b) in enumerate([(lo.red(), hi.red()), (lo.green(), hi.green()),
                                    (lo.blue(), hi.blue())]):
            gray[:, c] = np.linspace(a, b, 256).astype(np.uint8)
        gray[:, 3] = 255
        mask = gray.copy()  # losers in the background colour, winners in the accent
        mask[:128, :3] = QColor(theme.base).getRgb()[:3]
        mask[128:, :3] = QColor(theme.accent).getRgb()[:3]
        self.luts = {"diverging": themes.lut(theme.diverging), "gray": gray, "mask": mask}
        self.setStyleSheet(
            f"QFrame#stageCard {{ border: 1px solid {theme.muted}; border-radius: 4px; }}"
            f"QLabel#muted {{ color: {theme.muted}; }}"
            f"QLabel#caption {{ color: {theme.text}; font-weight: bold; }}"
            f"QLabel#sectionTitle {{ font-weight: bold; font-size: 13pt; }}")
        for grid in self.grids.values():
            grid.set_colors(theme.text, theme.muted, theme.accent)
        if self.step_trace is not None:
            self._refresh_cards()

    # ---- data ---------------------------------------------------------------------------
    def set_step(self, st: StepTrace) -> None:
        """Show the pass of the step just taken (its pre-step weights are in ``st``)."""
        if self.model is None or self.model.config != st.config:
            self.model = Model(st.config)
        self.step_trace = st
        stages = build_stages(self.model, st)
        keys = [s.key for s in stages]
        self.stages = {s.key: s for s in stages}
        if self.isVisible():
            self._width = max(200, self.scroll.viewport().width() - 60)
        if keys != [k for card in self.cards for k in card.keys]:
            self._rebuild_cards(stages)
        self._refresh_cards()
        tr = st.trace
        label = int(tr["labels"][0])
        probs = tr["probs"][0]
        guess = int(np.argmax(probs))
        verdict = (f"<span style='color:{self.theme.good}'>right</span>" if guess == label else
                   f"<span style='color:{self.theme.bad}'>wrong</span>")
        self.header_label.setText(
            f"<b>Step {st.step}</b> &nbsp; one sample, label <b>{label}</b><br>"
            f"network said <b>{guess}</b> (out[{guess}] = {probs[guess]:.3f}), {verdict}"
            f" &nbsp; loss L = {float(tr['loss'][0]):.4f} &nbsp; lr {st.lr:g}")
        self.gradcheck_button.setEnabled(True)
        if self.gradcheck_report is not None:
            self.gradcheck_status.setText("(from an earlier step; run it again for this one)")
        key, index = self.selection
        if key not in self.stages:
            key, index = "loss", (0,)
        self.select(key, index)

    def _rebuild_cards(self, stages: list[Stage]) -> None:
        for card in self.cards:
            card.setParent(None)
            card.deleteLater()
        for i in reversed(range(self.content_layout.count())):
            item = self.content_layout.itemAt(i)
            if item.widget() is not None and item.widget() is not self.placeholder:
                item.widget().setParent(None)
            elif item.spacerItem() is not None:
                self.content_layout.removeItem(item)
        self.placeholder.hide()
        self.cards, self.grids = [], {}
        section = None
        i = 0
        while i < len(stages):
            s = stages[i]
            if s.section != section:
                section = s.section
                header = QLabel(SECTIONS[section])
                header.setObjectName("sectionTitle")
                self.content_layout.addWidget(header)
            group = [s]
            while s.group and i + len(group) < len(stages) and \
                    stages[i + len(group)].group == s.group:
                group.append(stages[i + len(group)])
            card = StageCard(group, self._on_click, self._width)
            self.cards.append(card)
            self.grids.update(card.grids)
            self.content_layout.addWidget(card)
            i += len(group)
        self.content_layout.addStretch(1)
        for grid in self.grids.values():
            grid.set_colors(self.theme.text, self.theme.muted, self.theme.accent)

    def _refresh_cards(self) -> None:
        label = int(self.step_trace.trace["labels"][0])
        for card in self.cards:
            card.update_stages([self.stages[k] for k in card.keys], self.luts, self._width)
        for key, grid in self.grids.items():
            grid.emphasis = {label} if self.stages[key].layout.col_labels else set()

    # ---- selection ----------------------------------------------------------------------
    def _on_click(self, key: str, k: int, i: int, j: int) -> None:
        self.select(key, self.stages[key].layout.to_index(k, i, j))

    def select(self, key: str, index) -> Explanation:
        """Explain the cell ``index`` of stage ``key``; outline it and its sources."""
        stage = self.stages[key]
        index = tuple(int(v) for v in index)
        e = stage.explain(index)
        self.selection, self.explanation = (key, index), e
        self.arithmetic_text.setPlainText(e.text(self._text_columns()))
        sources: dict[str, list] = {}
        for src_key, src_index in e.sources:
            for other in self.stages.values():
                if src_key in other.trace_keys and other.key != key:
                    try:
                        cell = other.layout.to_cell(tuple(src_index))
                    except (IndexError, TypeError, ValueError):
                        continue
                    sources.setdefault(other.key, []).append(cell)
        for other, grid in self.grids.items():
            grid.set_marks(stage.layout.to_cell(index) if other == key else None,
                           sources.get(other, ()))
        self.cell_selected.emit(key, index)
        return e

    def _text_columns(self) -> int:
        """Characters that fit on one line of the arithmetic panel."""
        char = self.arithmetic_text.fontMetrics().horizontalAdvance("0") or 8
        return max(40, self.arithmetic_text.viewport().width() // char - 2)

    # ---- gradient check -----------------------------------------------------------------
    def run_gradcheck(self) -> None:
        """Check the analytic gradients of this step's sample, with its pre-step weights."""
        st = self.step_trace
        if st is None:
            return
        model = Model(st.config)
        model.set_params(st.params_before)
        task = GradcheckTask(model, st.trace["input"].copy(), st.trace["labels"].copy(),
                             self.grad_hook, self.gradcheck_entries)
        task.setAutoDelete(False)
        task.signals.done.connect(self._show_gradcheck)
        self._tasks.append(task)
        self.gradcheck_button.setEnabled(False)
        self.gradcheck_status.setText("checking: centred differences in float64 ...")
        self.pool.start(task)

    def _show_gradcheck(self, report: dict) -> None:
        self._tasks = [t for t in self._tasks if t.signals is not self.sender()]
        self.gradcheck_button.setEnabled(self.step_trace is not None)
        self.gradcheck_report = report
        table = self.gradcheck_table
        if "error" in report:
            table.setRowCount(0)
            self.gradcheck_status.setText(f"gradient check failed to run: {report['error']}")
            self.gradcheck_finished.emit(report)
            return
        table.setRowCount(len(report["layers"]))
        table.show()
        for row, (layer, err) in enumerate(report["layers"].items()):
            ok = err < PASS_THRESHOLD
            mark = QTableWidgetItem("\u2713 pass" if ok else "\u2717 FAIL")
            mark.setForeground(QColor(self.theme.good if ok else self.theme.bad))
            params = [f"{k}: {v['max_rel_error']:.1e} ({v['checked']} of {v['size']} checked)"
                      for k, v in report["params"].items() if k.split(".")[0] == layer]
            for col, item in enumerate([QTableWidgetItem(layer),
                                        QTableWidgetItem(f"{err:.2e}"), mark]):
                item.setToolTip("\n".join(params))
                table.setItem(row, col, item)
        verdict = "passed" if report["passed"] else "FAILED"
        checked = max(v["checked"] for v in report["params"].values())
        self.gradcheck_status.setText(
            f"Step {self.step_trace.step}: {verdict}: every relative error must be below "
            f"{PASS_THRESHOLD:g}. Centred differences in float64, up to {checked} entries per "
            f"weight, input jittered by +-{report['jitter']:g} to stay off pooling ties.")
        self.gradcheck_finished.emit(report)

    # ---- a window of its own --------------------------------------------------------------
    def toggle_window(self) -> None:
        """Move the inspector out of its tab into a window of its own, or back."""
        if self._home is not None:
            self.close()
            return
        holder = self.parent()
        while holder is not None and not isinstance(holder, QScrollArea):
            holder = holder.parent()
        if holder is None or holder.widget() is not self:
            return  # not in a tab: already a window
        top = self.window()
        holder.takeWidget()
        note = QWidget()
        box = QVBoxLayout(note)
        back = QPushButton("Put the inspector back here")
        back.clicked.connect(self.close)
        box.addWidget(QLabel("The inspector is open in its own window."))
        box.addWidget(back)
        box.addStretch(1)
        holder.setWidget(note)
        self._home = holder
        self.setParent(top, Qt.Window)  # closes with the main window
        self.setWindowTitle("ConvScope: Inspector")
        self.window_button.setText("Put back in the tab")
        self.resize(1280, 800)
        self.show()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._home is None:
            super().closeEvent(event)
            return
        event.ignore()  # a window of its own closes by going back to its tab
        home, self._home = self._home, None
        home.takeWidget().deleteLater()
        self.setWindowFlags(Qt.Widget)
        home.setWidget(self)
        self.window_button.setText("Open in its own window")
        self.show()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Wait for a running gradient check and put a window of its own back (call before
        closing the main window)."""
        if self._home is not None:
            self.close()
        return self.pool.waitForDone(timeout_ms)
