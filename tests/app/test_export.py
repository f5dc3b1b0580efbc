"""Export: history CSV, run settings JSON, panels as PNG and SVG; the Export menu."""
from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pyqtgraph as pg
import pytest
from PIL import Image
from PyQt5.QtGui import QImage
from PyQt5.QtWidgets import QMenu

from convscope.visualizer import dialogs
from convscope.visualizer.evaluation import EvaluationResult, EvaluationView
from convscope.visualizer.export import (
    ExportError,
    Exports,
    export_panel,
    history_series,
    svg_supported,
    write_history_csv,
    write_settings_json,
)


def plot_panel(widgets):
    w = pg.PlotWidget()
    w.plot(np.arange(50), np.sin(np.arange(50) / 5), pen=pg.mkPen("r", width=2))
    w.resize(400, 300)
    w.show()
    widgets.append(w)
    return w


def evaluation_panel(widgets):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10)
    probs = rng.dirichlet(np.ones(10), 100).astype(np.float32)
    preds = probs.argmax(1)
    confusion = np.zeros((10, 10), np.int64)
    np.add.at(confusion, (labels, preds), 1)
    view = EvaluationView()
    view.resize(800, 600)
    view.set_test_set(rng.integers(0, 255, (100, 28, 28), dtype=np.uint8), labels)
    view.set_result(EvaluationResult(0.5, float((preds == labels).mean()), probs, labels,
                                     preds, confusion, np.diag(confusion) / 10.0))
    view.show()
    widgets.append(view)
    return view


@pytest.mark.slow
def test_history_csv_parses_back(tmp_path):
    panels = {"loss": SimpleNamespace(histories={
        "raw": SimpleNamespace(x=np.arange(1, 6) * 8.0, y=np.array([2.3, 1.9, 1.2, 0.8, 0.61])),
        "test": SimpleNamespace(x=np.array([40.0]), y=np.array([0.7123456789123]))}),
        "accuracy": SimpleNamespace(histories={
            "running": SimpleNamespace(x=np.array([8.0, 16.5]), y=np.array([0.1, 0.25]))})}
    series = history_series(panels)
    assert list(series) == ["loss/raw", "loss/test", "accuracy/running"]
    path = tmp_path / "history.csv"
    assert write_history_csv(path, series) == 8
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["series", "samples_seen", "value"]
    assert [r[0] for r in rows[1:]] == ["loss/raw"] * 5 + ["loss/test"] + ["accuracy/running"] * 2
    assert [r[1] for r in rows[1:6]] == ["8", "16", "24", "32", "40"]
    assert float(rows[6][2]) == pytest.approx(0.7123456789123, rel=1e-9)
    assert rows[8][1] == "16"  # a bucket's middle: a whole number of samples


@pytest.mark.slow
def test_settings_json_round_trip(tmp_path):
    @dataclass(frozen=True)
    class Hyper:
        lr: float = 0.01
        batch_size: int = 8

    path = tmp_path / "run.json"
    write_settings_json(path, {"hyper": Hyper(), "seed": np.int64(3), "preset": "seed",
                               "test_accuracy": float("nan"), "shape": (13, 13, 8),
                               "mean": np.float32(0.5)})
    data = json.loads(path.read_text())
    assert data == {"hyper": {"lr": 0.01, "batch_size": 8}, "seed": 3, "preset": "seed",
                    "test_accuracy": None, "shape": [13, 13, 8], "mean": 0.5}


def _check_png(path, min_size):
    qimage = QImage(str(path))
    assert not qimage.isNull()
    assert qimage.width() >= min_size[0] and qimage.height() >= min_size[1]
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 5  # not a blank image


@pytest.mark.slow
def test_single_plot_panel_as_png_and_svg(tmp_path, widgets):
    panel = plot_panel(widgets)
    assert svg_supported(panel)
    export_panel(tmp_path / "curve.png", panel)
    _check_png(tmp_path / "curve.png", (400, 250))
    export_panel(tmp_path / "curve.svg", panel)
    root = ET.parse(tmp_path / "curve.svg").getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png", "curve.svg"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "curve.png").stat().st_mode & 0o777 == 0o666 & ~umask  # not 0600


@pytest.mark.slow
def test_composite_panel_as_png_but_not_svg(tmp_path, widgets):
    panel = evaluation_panel(widgets)
    assert not svg_supported(panel)
    export_panel(tmp_path / "evaluation.png", panel)
    _check_png(tmp_path / "evaluation.png", (800, 600))
    with pytest.raises(ExportError, match="PNG"):
        export_panel(tmp_path / "evaluation.svg", panel)
    with pytest.raises(ExportError, match=".jpg"):
        export_panel(tmp_path / "evaluation.jpg", panel)
    assert [p.name for p in tmp_path.iterdir()] == ["evaluation.png"]  # no temporaries


@pytest.mark.slow
def test_export_menu(tmp_path, widgets, monkeypatch, settings, dialog_errors):
    panels = {"Loss curve": plot_panel(widgets), "Evaluation": evaluation_panel(widgets)}
    errors, targets = dialog_errors, iter([str(tmp_path / "h"), str(tmp_path / "loss.svg"),
                                str(tmp_path / "missing" / "x.png")])
    monkeypatch.setattr(dialogs, "ask_save_path", lambda *a: next(targets))
    exports = Exports(None, settings, lambda: panels,
                      lambda: {"loss/raw": (np.arange(3.0), np.ones(3))},
                      lambda: {"preset": "seed", "lr": 0.01})
    file_menu = QMenu()
    menu = exports.install_menu(file_menu)
    texts = [a.text() for a in menu.actions() if a.text()]
    assert texts == ["History as &CSV...", "Run settings as &JSON...", "Panel as &PNG",
                     "Panel as &SVG"]
    png, svg = (a.menu() for a in menu.actions()[-2:])
    assert [a.text() for a in png.actions()] == ["Loss curve...", "Evaluation..."]
    assert [a.text() for a in svg.actions()] == ["Loss curve..."]
    menu.actions()[0].trigger()
    assert (tmp_path / "h.csv").read_text().splitlines()[1] == "loss/raw,0,1"
    svg.actions()[0].trigger()
    assert ET.parse(tmp_path / "loss.svg").getroot().tag.endswith("svg")
    assert errors == [] and settings.last_dir() == str(tmp_path)
    assert not exports.export_panel("Evaluation", ".png")  # into a folder that does not exist
    assert len(errors) == 1 and "missing" in errors[0] and "\n" not in errors[0]
    assert exports.export_settings(str(tmp_path / "run.json"))
    assert json.loads((tmp_path / "run.json").read_text()) == {"preset": "seed", "lr": 0.01}


@pytest.mark.slow
def test_painted_panel_as_svg_keeps_its_text_and_bars(tmp_path, widgets):
    from convscope.visualizer.probs import ProbsPanel
    from convscope.visualizer.theme import LIGHT

    panel = ProbsPanel()
    panel.apply_theme(LIGHT)
    logits = np.array([0.5, -1, 4, 0, 1, -2, 0.3, 0, 2, -1])
    probs = np.exp(logits) / np.exp(logits).sum()
    panel.set_output(logits, probs, 2)
    panel.resize(420, 300)
    panel.show()
    widgets.append(panel)
    assert svg_supported(panel)
    export_panel(tmp_path / "prediction.svg", panel)
    root = ET.parse(tmp_path / "prediction.svg").getroot()
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "softmax probability" in text and f"{probs[2]:.0%}" in text
    assert len([e for e in root.iter() if e.tag.endswith(("rect", "path", "polygon"))]) > 20


@pytest.mark.slow
def test_svg_export_keeps_a_zoomed_curve_inside_the_frame(tmp_path, widgets):
    from convscope.visualizer.export import clipped_to_view

    panel = plot_panel(widgets)
    panel.setYRange(-0.5, 0.5, padding=0)  # the sine runs out of the frame
    curve = panel.getPlotItem().listDataItems()[0]
    before = curve.yData.copy()
    with clipped_to_view(panel):
        assert curve.yData.min() >= -0.5 and curve.yData.max() <= 0.5
    np.testing.assert_array_equal(curve.yData, before)  # given back as it was
    export_panel(tmp_path / "zoomed.svg", panel)
    np.testing.assert_array_equal(curve.yData, before)


@pytest.mark.slow
def test_exporting_a_hidden_panel_leaves_the_tab_shown(tmp_path, window):
    window.show()
    names = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    window.tabs.setCurrentIndex(names.index("Inspector"))
    exports = window.file_actions.exports
    assert exports.export_panel("Timeline", ".png", str(tmp_path / "timeline.png"))
    assert (tmp_path / "timeline.png").stat().st_size > 0
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Inspector"
