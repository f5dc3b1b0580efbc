"""Export: curve histories as CSV, the run's settings as JSON, any panel as PNG or SVG.

Every file is written atomically (a temporary file in the same folder, then a rename), so a
failed export never leaves half a file. PNG and SVG of a panel holding one pyqtgraph view go
through pyqtgraph's exporters; a panel made of several widgets is saved as PNG from its
on-screen rendering (SVG is offered only where pyqtgraph can export the whole panel).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from contextlib import contextmanager

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters  # noqa: F401 - registers pg.exporters
from PyQt5.QtCore import QObject, pyqtSignal
from PyQt5.QtGui import QPainter
from PyQt5.QtWidgets import QMenu

from convscope.engine.files.atomic import atomic_path as _atomic_path
from convscope.visualizer import dialogs


class ExportError(OSError):
    """An export that could not be written (one-line message)."""


@contextmanager
def atomic_path(path: str):
    """``engine.atomic.atomic_path``, failing with a one-line ExportError."""
    try:
        with _atomic_path(path, suffix=os.path.splitext(path)[1]) as tmp:
            yield tmp
    except OSError as e:
        if isinstance(e, ExportError):
            raise
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from None


# ---- history ---------------------------------------------------------------------------
def history_series(panels: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"loss/raw": (samples (n,), values (n,)), ...} from panels that keep ``histories``
    (a dict of ``visualizer.history.History``), e.g. {"loss": LossPanel, "accuracy": ...}."""
    series = {}
    for panel_name, panel in panels.items():
        for key, h in panel.histories.items():
            series[f"{panel_name}/{key}"] = (np.asarray(h.x), np.asarray(h.y))
    return series


def write_history_csv(path, series: dict) -> int:
    """Long-format CSV ``series,samples_seen,value`` (one row per point, series in the given
    order, points in time order). Long runs are stored downsampled: a point is then a bucket's
    mean, and ``samples_seen`` the bucket's middle, rounded to a whole sample. Returns the
    number of data rows."""
    rows = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["series", "samples_seen", "value"])
        for name, (xs, ys) in series.items():
            for x, y in zip(np.asarray(xs, float), np.asarray(ys, float), strict=True):
                out.writerow([name, f"{round(x):d}", f"{y:.10g}"])
                rows += 1
    return rows


# ---- settings --------------------------------------------------------------------------
def _plain(value):
    """Dataclasses, numpy scalars/arrays and tuples -> JSON-able values (NaN -> None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_settings_json(path, settings: dict) -> None:
    """The run's settings (architecture, dataset, seed, hyperparameters, ...) as indented
    JSON."""
    text = json.dumps(_plain(settings), indent=2, sort_keys=False) + "\n"
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


# ---- panels ----------------------------------------------------------------------------
def _single_view(widget):
    """The one pyqtgraph GraphicsView a panel is made of, or None."""
    if isinstance(widget, pg.GraphicsView):
        return widget
    views = [v for v in widget.findChildren(pg.GraphicsView) if v.isVisibleTo(widget)]
    return views[0] if len(views) == 1 else None


def _painted(widget) -> bool:
    """True for a panel drawn by plain QPainter code (no pyqtgraph view in it)."""
    return not isinstance(widget, pg.GraphicsView) and not widget.findChildren(pg.GraphicsView)


def svg_supported(widget) -> bool:
    """True when the whole panel can be saved as SVG: it holds one pyqtgraph view
    (pyqtgraph's exporter) or none (Qt's SVG generator renders the widget)."""
    return _single_view(widget) is not None or _painted(widget)


def _render_svg(path: str, widget) -> bool:
    from PyQt5.QtSvg import QSvgGenerator

    generator = QSvgGenerator()
    generator.setFileName(path)
    generator.setSize(widget.size())
    generator.setViewBox(widget.rect())
    painter = QPainter(generator)
    widget.render(painter)
    return painter.end() and os.path.getsize(path) > 0


@contextmanager
def clipped_to_view(view):
    """Curves held inside their plot's frame while an SVG is written (pyqtgraph's SVG exporter
    does not clip, so a zoomed plot's lines ran outside the frame); restored afterwards."""
    saved = []
    for item in view.scene().items():
        if not isinstance(item, pg.PlotDataItem) or item.xData is None or not len(item.xData):
            continue
        vb = item.getViewBox()
        if vb is None:
            continue
        (x0, x1), (y0, y1) = vb.viewRange()
        log_x, log_y = item.opts.get("logMode", (False, False))
        if log_x:
            x0, x1 = 10.0 ** x0, 10.0 ** x1
        if log_y:
            y0, y1 = 10.0 ** y0, 10.0 ** y1
        saved.append((item, item.xData, item.yData))
        item.setData(np.clip(item.xData, x0, x1), np.clip(item.yData, y0, y1))
    try:
        yield
    finally:
        for item, x, y in saved:
            item.setData(x, y)


def export_panel(path, widget) -> None:
    """Save a panel as .png (pyqtgraph's ImageExporter, or the widget's rendering when it is
    made of several views) or .svg (pyqtgraph's SVGExporter)."""
    path = os.fspath(path)
    kind = os.path.splitext(path)[1].lower()
    view = _single_view(widget)
    if kind not in (".png", ".svg"):
        raise ExportError(f"cannot export a panel as {kind or 'a file without extension'} "
                          f"(use .png or .svg)")
    if kind == ".svg" and not svg_supported(widget):
        raise ExportError("this panel holds several plots; export it as PNG")
    with atomic_path(path) as tmp:
        if view is None and kind == ".svg":
            ok = _render_svg(tmp, widget)
        elif view is None:
            ok = widget.grab().save(tmp, "PNG")
        else:
            exporter_class = (pg.exporters.SVGExporter if kind == ".svg"
                              else pg.exporters.ImageExporter)
            exporter = exporter_class(view.scene())
            if kind == ".png":  # at least the on-screen size, in whole pixels
                exporter.parameters()["width"] = max(int(view.width()), 1)
                ok = exporter.export(tmp) is not False
            else:
                with clipped_to_view(view):
                    ok = exporter.export(tmp) is not False
            ok = ok and os.path.getsize(tmp) > 0
        if not ok:
            raise ExportError(f"cannot write {path}")


# ---- the File > Export menu --------------------------------------------------------------
class Exports(QObject):
    """File > Export: history as CSV, run settings as JSON, each panel as PNG (and SVG where
    pyqtgraph supports it). The main window supplies three callables returning plain data:
    ``panels() -> {title: QWidget}``, ``history() -> {name: (x, y)}`` (see
    ``history_series``) and ``run_settings() -> dict``; ``reveal(title)``, if given, brings a
    hidden panel on screen (laid out at its real size) before it is exported and returns a
    function that puts the window back as it was (the tab shown stays the user's)."""
    exported = pyqtSignal(str)  # path
    error = pyqtSignal(str)

    def __init__(self, parent_widget, settings, panels, history, run_settings, reveal=None):
        super().__init__(parent_widget)
        self.parent_widget = parent_widget
        self.settings = settings
        self.panels, self.history, self.run_settings = panels, history, run_settings
        self.reveal = reveal
        self.menu: QMenu | None = None

    def install_menu(self, menu: QMenu) -> QMenu:
        """Add an Export submenu to ``menu``; its panel entries follow the current panels."""
        self.menu = menu.addMenu("&Export")
        self.menu.aboutToShow.connect(self._fill)
        self._fill()
        return self.menu

    def _fill(self) -> None:
        m = self.menu
        m.clear()
        m.addAction("History as &CSV...", self.export_history)
        m.addAction("Run settings as &JSON...", self.export_settings)
        m.addSeparator()
        panels = self.panels()
        png, svg = m.addMenu("Panel as &PNG"), m.addMenu("Panel as &SVG")
        for title, widget in panels.items():
            png.addAction(f"{title}...", lambda t=title: self.export_panel(t, ".png"))
            if svg_supported(widget):
                svg.addAction(f"{title}...", lambda t=title: self.export_panel(t, ".svg"))
        svg.setEnabled(not svg.isEmpty())

    def _ask(self, title: str, name: str, filters: str) -> str | None:
        path = dialogs.ask_save_path(self.parent_widget, title,
                                     os.path.join(self.settings.last_dir(), name), filters)
        if path and not os.path.splitext(path)[1]:
            path += os.path.splitext(name)[1]
        return path

    def _run(self, path: str | None, write) -> bool:
        if not path:
            return False
        try:
            write(path)
        except (OSError, ValueError, TypeError) as e:
            message = str(e) if isinstance(e, ExportError) else \
                f"cannot write {path}: {getattr(e, 'strerror', None) or e}"
            self.error.emit(message)
            dialogs.show_error(self.parent_widget, "Export failed", message)
            return False
        self.settings.set_last_dir(os.path.dirname(os.path.abspath(path)))
        self.exported.emit(os.path.abspath(path))
        return True

    def export_history(self, path: str | None = None) -> bool:
        path = path or self._ask("Export history", "history.csv", "CSV files (*.csv)")
        return self._run(path, lambda p: write_history_csv(p, self.history()))

    def export_settings(self, path: str | None = None) -> bool:
        path = path or self._ask("Export run settings", "run.json", "JSON files (*.json)")
        return self._run(path, lambda p: write_settings_json(p, self.run_settings()))

    def export_panel(self, title: str, kind: str = ".png", path: str | None = None) -> bool:
        widget = self.panels().get(title)
        if widget is None:
            return False
        name = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-") + kind
        path = path or self._ask(f"Export {title}", name,
                                 "PNG images (*.png)" if kind == ".png" else "SVG images (*.svg)")
        undo = None
        if path and self.reveal is not None and not widget.isVisible():
            undo = self.reveal(title)
        try:
            return self._run(path, lambda p: export_panel(p, widget))
        finally:
            if callable(undo):
                undo()
