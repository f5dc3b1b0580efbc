"""The app with 3, 26 and 62 classes: every panel sized to the classes, names that fit, a model
of other classes refused, progress while a folder of pictures converts."""
from __future__ import annotations

import string

import glyphs
import numpy as np
import pytest
from PyQt5 import QtCore

from convscope.engine.data.datasets import Dataset, load_mini
from convscope.engine.data.idx import DataError
from convscope.engine.files.checkpoint import save_model
from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import Trainer
from convscope.engine.tools.explain import traced_step
from convscope.visualizer.class_axis import MANY
from convscope.visualizer.evaluation import EvaluationView, evaluate_weights
from convscope.visualizer.inspector_stages import build_stages
from convscope.visualizer.messages import Hyper, RunSettings
from convscope.visualizer.model_files import read_model_file
from convscope.visualizer.prob_chart import ProbChart
from convscope.visualizer.run_setup import build_trainer, load_aside

BYCLASS = list(string.digits + string.ascii_uppercase + string.ascii_lowercase)  # 62


def _dataset(names, per_class: int = 4) -> Dataset:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(len(names)), per_class).astype(np.uint8)
    x = np.stack([glyphs.glyph_array(int(c), rng) for c in y])
    return Dataset("glyphs", x, y, x, y, list(names))


def _labels(axis, view_range) -> list[str]:
    """The names an axis draws over ``view_range`` at its size."""
    size = axis.geometry().width() if axis.orientation == "bottom" else axis.geometry().height()
    values = [v for _, level in axis.tickValues(*view_range, size) for v in level]
    return axis.tickStrings(values, 1.0, 1.0)


@pytest.mark.parametrize("names", [["circle", "line", "zigzag"], glyphs.LETTERS, BYCLASS])
def test_evaluation_view_is_sized_to_the_classes(qtbot, widgets, names):
    n = len(names)
    data = _dataset(names)
    config = build_config("seed", class_names=names)
    params = Model(config, 0).params()
    view = EvaluationView()
    widgets.append(view)
    view.resize(1000, 700)
    view.show()
    view.set_test_set(data.x_test, data.y_test, names)
    view.set_result(evaluate_weights(config, params, data.x_test, data.y_test))
    plot = view.confusion_plot
    assert view.result.confusion.shape == (n, n) and view.result.confusion.sum() == len(data.y_test)
    assert plot.confusion.shape == (n, n) and plot.image.image.shape[:2] == (n, n)
    assert len(plot.texts) == (n * n if n <= MANY else 0)  # counts only where they fit
    assert len(view.per_class_plot.texts) == (n if n <= MANY else 0)
    r, c = n - 1, 0  # the last class's row is reachable and named
    plot._on_move(plot.plotItem.vb.mapViewToScene(QtCore.QPointF(c + 0.5, r + 0.5)))
    assert plot.toolTip().startswith(f"true {names[r]}, predicted {names[c]}: ")
    bottom, left = plot.plotItem.getAxis("bottom"), plot.plotItem.getAxis("left")
    shown = _labels(bottom, (0, n))
    assert shown[0] == names[0] and set(shown) <= set(names)
    if n > MANY:  # thinned, never crowded: zoomed in, every name in view is drawn
        assert len(shown) < n
        assert _labels(left, (0, 6)) == names[:6]
    else:
        assert shown == names and _labels(left, (0, n)) == names
    view.gallery.setCurrentItem(view.gallery.item(0))
    assert len(view.probability_plot.probs) == n


def test_probability_bars_name_what_fits():
    chart = ProbChart()
    chart.resize(300, 220)
    for names, step in ((list("0123456789"), 1), (BYCLASS, None)):
        chart.set_labels(names)
        area = chart._charts()[0]
        got = chart._label_step(area)
        if step is not None:
            assert got == step
        else:  # 62 names in 260 pixels: every few, and the names drawn never touch
            assert 1 < got < 10 and area.width() / len(names) * got >= 8
    chart.deleteLater()


def test_inspector_strips_follow_the_classes():
    data = _dataset(glyphs.LETTERS, 1)
    model = Model(build_config("seed", class_names=glyphs.LETTERS), 0)
    trainer = Trainer(model, data.x_train, data.y_train, lr=0.01)
    stages = {s.key: s for s in build_stages(model, traced_step(trainer))}
    assert stages["probs"].title == "softmax out (26)"
    assert stages["probs"].layout.maps.shape == (1, 2, 13)  # two rows of 13
    assert stages["dL_dt"].layout.maps.shape == (1, 2, 13)


def test_a_run_is_sized_to_its_data_and_a_model_of_other_classes_is_refused(tmp_path):
    letters = _dataset(glyphs.LETTERS, 2)
    trainer, config, _ = build_trainer(RunSettings(), letters, Hyper())
    assert trainer.model.classes == 26 and config["class_names"] == glyphs.LETTERS
    save_model(tmp_path / "letters.npz", trainer.model,
               extra={"class_names": glyphs.LETTERS, "dataset": "letters"})
    loaded = read_model_file(str(tmp_path / "letters.npz"))
    again, _, _ = build_trainer(RunSettings(), letters, Hyper(), loaded)
    assert again.model.classes == 26
    with pytest.raises(DataError, match="tells apart 26 classes .* the data has 10 classes"):
        build_trainer(RunSettings(), load_mini(), Hyper(), loaded)


def test_loading_a_picture_folder_tells_its_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path / "cache"))
    root = glyphs.write_folder(tmp_path / "shapes", ["a", "b"], 40)
    told = []
    data = load_aside(None, str(root), lambda: False, told.append)
    assert data.class_names == ["a", "b"]
    assert told[-1] == f"{root}: 80 of 80 pictures converted" and len(told) >= 2


@pytest.mark.parametrize("names", [list("0123456789"), glyphs.LETTERS, BYCLASS])
def test_class_templates_stay_legible_and_every_class_is_reachable(qtbot, widgets, names):
    """At 26 or 62 classes the template columns would be a few pixels wide: the classes come
    in groups one under the other, tiles at least MIN_TILE_PX, and the panel scrolls."""
    from PyQt5.QtCore import QPointF

    from convscope.visualizer.mosaic import GAP
    from convscope.visualizer.templates import MIN_TILE_PX, TemplatesPanel

    n = len(names)
    panel = TemplatesPanel()
    widgets.append(panel)
    panel.resize(300, 260)  # the dock's size in a 1280x720 window
    panel.show()
    qtbot.waitExposed(panel)
    params = Model(build_config("seed", class_names=names), 0).params()
    trace = {"conv1": np.zeros((1, 26, 26, 8)), "pool1": np.zeros((1, 13, 13, 8)),
             "flatten": np.zeros((1, 1352))}
    panel.set_classes(names)
    panel.set_weights(params, trace)
    view = panel.view

    def tile_px():  # display pixels across one 13x13 map, once the layout has settled
        return 13 * view.sections[0].factor / view.viewPixelSize()[0]
    qtbot.waitUntil(lambda: tile_px() >= MIN_TILE_PX, timeout=5000)
    sections = view.sections
    shown = [item.toPlainText() for s in sections for item in s.labels if item.toPlainText()]
    assert shown == names  # every class named once, in order
    if n == 10:
        assert len(sections) == 1 and not panel.scroll_bar.isVisible()
        return
    assert len(sections) > 1 and panel.scroll_bar.isVisible()
    assert panel.scroll_bar.maximum() > 0
    panel.scroll_bar.setValue(panel.scroll_bar.maximum())  # down to the last group
    last = sections[-1]
    col = (n - 1) % panel.per_group
    w = 13 * last.factor
    point = QPointF(last.x0 + col * (w + GAP) + w / 2, last.y0 + last.top + w / 2)
    assert view.viewRect().contains(point)  # scrolled into view
    panel._on_mouse(view.mapViewToScene(point))
    assert panel.hover_label.text().startswith(f"dense1: class {names[-1]}, input map 1,")
